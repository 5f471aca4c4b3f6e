"""Tests of the `python -m export.score` entrypoint: serialized records scored
by an exported SavedModel."""

import json

from absl import app
import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from export import score
from pipelines.data import layout
from pipelines.data import records
from tests.helpers.flags import run_main


@pytest.fixture(scope="module")
def shard(tiny_run, tmp_path_factory):
  """Per-row test records (the data directory holds row blocks)."""
  return layout.write_split_examples(
      tiny_run["data_dir"], "test",
      str(tmp_path_factory.mktemp("score") / "test.tfrecord"), 20)


def test_scores_the_first_records_like_the_signature(published, loaded,
                                                     shard):
  result = score.score(published, shard, 3)
  assert result["num"] == 3
  assert sorted(result["outputs"]) == sorted(   # calibrated, raw and tau
      F.SERVING_OUTPUTS + tuple(k + "_raw" for k in F.SERVING_OUTPUTS)
      + (F.TAU,))
  examples = [r.numpy() for r in tf.data.TFRecordDataset(shard).take(3)]
  expected = loaded.signatures["serving_default"](
      examples=tf.constant(examples))
  for key, values in result["outputs"].items():
    np.testing.assert_allclose(values, expected[key].numpy(), rtol=1e-6)


def test_bad_signature_or_no_records_are_named(published, shard, tmp_path):
  with pytest.raises(ValueError, match="signature 'nope' not in"):
    score.score(published, shard, 1, signature="nope")
  empty = str(tmp_path / "empty.tfrecord")
  records.write_examples({"x": np.zeros(0, np.int64)}, empty)
  with pytest.raises(ValueError, match=f"no records in {empty}"):
    score.score(published, empty, 1)


def test_main_prints_one_json_object(published, shard, capsys):
  run_main(score, [f"--saved_model={published}", f"--records={shard}",
                   "--num=2"])
  printed = json.loads(capsys.readouterr().out)
  assert printed["num"] == 2
  assert all(len(v) == 2 for v in printed["outputs"].values())
  with pytest.raises(app.UsageError, match="--saved_model and --records are "
                     "required"):
    run_main(score, [f"--records={shard}"])
