"""Raw layouts -> converter -> TFRecord -> training batches -> a training run."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import overrides

from adaftr_tf import experiments
from adaftr_tf import features as F
from pipelines.data import reader
from pipelines.data import records
from pipelines.data.formats import conversion

from tests.helpers.samples import (aliccp_raw_lines, aliexpress_raw_lines,
                                  write_aliccp_raw, write_aliexpress_raw)

QUIET = dict(progress=False)


def _convert(layout, path, out, **options):
  return conversion.convert(layout, str(path), str(out),
                            conversion.Options(**{**QUIET, **options}),
                            log=lambda _: None)


def _rows(out, split):
  """Every record of a split, in file order, as numpy (lists for ragged)."""
  schema = F.FeatureSchema.load(str(out))
  batches = list(reader.make_dataset(str(out), split, schema, 4096,
                                         training=False))
  features = {k: (v.to_list() if isinstance(v, tf.RaggedTensor) else
                  v.numpy()) for k, v in batches[0][0].items()}
  labels = {k: v.numpy() for k, v in batches[0][1].items()}
  return schema, features, labels


def test_aliexpress_raw_round_trip(tmp_path):
  folder = write_aliexpress_raw(tmp_path / "raw")
  report = _convert("aliexpress_raw", folder, tmp_path / "out")
  users, items = aliexpress_raw_lines(seed=0)
  users = {u.split(",")[0]: u.split(",") for u in users}
  items = [i.split(",") for i in items]
  boundary = len(items) - round(0.1 * len(items))
  with open(tmp_path / "out" / "data_report.json") as f:
    assert json.load(f)["splits"]["train"]["rows"] == boundary
  assert report["splits"]["valid"]["rows"] == len(items) - boundary
  assert report["splits"]["test"]["rows"] == len(items)
  schema, train, labels = _rows(tmp_path / "out", "train")
  _, valid, valid_labels = _rows(tmp_path / "out", "valid")
  # Valid = the END of the train files, in order.
  for split_items, feats, labs in ((items[:boundary], train, labels),
                                   (items[boundary:], valid, valid_labels)):
    np.testing.assert_array_equal(
        feats["categorical_2"], [int(users[i[0]][2]) for i in split_items])
    np.testing.assert_array_equal(
        feats["categorical_16"], [int(i[41]) for i in split_items])
    np.testing.assert_array_equal(
        feats["numerical_1"],
        np.float32([float(users[i[0]][8]) for i in split_items]))
    np.testing.assert_array_equal(labs["click"],
                                  [int(i[48]) >= 1 for i in split_items])
    np.testing.assert_array_equal(labs["conversion"],
                                  [int(i[48]) == 2 for i in split_items])
  # Statistics from the train rows only.
  expected = np.mean([float(i[1]) for i in items[:boundary]])
  numerical_24 = {f.name: f for f in schema.numerical}["numerical_24"]
  assert numerical_24.mean == pytest.approx(expected)
  vocab = {f.name: f for f in schema.categorical}["categorical_10"].vocabulary
  assert set(vocab) == {int(i[18]) for i in items[:boundary]}
  assert report["fields"]["categorical_10"]["oov_rate"]["train"] == 0.0


def test_aliccp_raw_round_trip_keeps_lists(tmp_path):
  folder = write_aliccp_raw(tmp_path / "raw", cwc_every=9)
  report = _convert("aliccp_raw", folder, tmp_path / "out")
  skeleton, common = aliccp_raw_lines(seed=0, cwc_every=9)
  common = {c.split(",")[0]: c.split(",")[2] for c in common}
  expected = []
  for line in skeleton:
    cells = line.split(",")
    if cells[1] == "0" and cells[2] == "1":
      continue  # dropped by default
    fields = {}
    for token in common[cells[3]].split("\x01") + cells[5].split("\x01"):
      field, rest = token.split("\x02")
      fields.setdefault("f" + field, []).append(int(rest.split("\x03")[0]))
    expected.append(fields)
  schema, train, _ = _rows(tmp_path / "out", "train")
  _, valid, _ = _rows(tmp_path / "out", "valid")
  multivalent = {f.name for f in schema.categorical if f.multivalent}
  assert multivalent == {"f109_14", "f110_14", "f127_14", "f150_14", "f210"}
  got = [{k: (train[k][i] if k in multivalent else [train[k][i]])
          for k in expected[0]} for i in range(len(train["f210"]))]
  got += [{k: (valid[k][i] if k in multivalent else [valid[k][i]])
           for k in expected[0]} for i in range(len(valid["f210"]))]
  assert got == expected
  train_files = [report["splits"][s] for s in ("train", "valid")]
  assert sum(s["dropped_conversion_without_click"] for s in train_files) == \
      sum(s["conversions_without_click"] for s in train_files) == 4
  kept = _convert("aliccp_raw", folder, tmp_path / "kept",
                  keep_conversions_without_click=True)
  assert kept["splits"]["train"]["rows"] + kept["splits"]["valid"]["rows"] \
      == len(skeleton)
  lengths = report["fields"]["f210"]["mean_list_length"]["train"]
  assert 1.0 < lengths < 2.0


def test_min_count_and_hash_buckets(tmp_path):
  folder = write_aliccp_raw(tmp_path / "raw", splits=("train",))
  report = _convert("aliccp_raw", folder, tmp_path / "mc", min_count=3)
  schema = F.FeatureSchema.load(str(tmp_path / "mc"))
  f205 = {f.name: f for f in schema.categorical}["f205"]
  assert f205.encoding == "vocabulary" and f205.vocab_size < 8
  assert report["fields"]["f205"]["train_cardinality"] == 8
  assert report["fields"]["f205"]["oov_rate"]["train"] > 0
  _convert("aliccp_raw", folder, tmp_path / "hash", hash_buckets=16)
  schema = F.FeatureSchema.load(str(tmp_path / "hash"))
  assert {(f.encoding, f.vocab_size) for f in schema.categorical} == {
      ("hash", 16)}


def test_output_folder_rules(tmp_path, shared_data_dir):
  path = os.path.join(shared_data_dir, "small.txt")
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "x").write_text("x")
  with pytest.raises(FileExistsError, match="--overwrite"):
    _convert("aliccp_text", path, tmp_path / "out")
  _convert("aliccp_text", path, tmp_path / "out", overwrite=True)
  assert not (tmp_path / "out" / "x").exists()
  assert records.list_shards(str(tmp_path / "out"), "valid")
  with pytest.raises(ValueError, match="valid_fraction"):
    _convert("aliccp_text", path, tmp_path / "o2", valid_fraction=1.0)


def _main(argv):
  from pipelines import convert
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["convert"] + argv)
    return convert.main(["convert"])


def test_convert_entrypoint_main(tmp_path, shared_data_dir, capsys):
  out = tmp_path / "out"
  csv_path = os.path.join(shared_data_dir, "ali_ccp_train_sample.csv")
  _main(["--format=aliccp_csv", f"--input={csv_path}", f"--output_dir={out}",
         "--noprogress", "--valid_fraction=0.2"])
  printed = capsys.readouterr().out
  assert "data report: aliccp_csv" in printed and "f205" in printed
  with open(out / "data_report.json") as f:
    assert json.load(f)["splits"]["valid"]["rows"] == 20
  with pytest.raises(SystemExit, match="error: --input .* does not exist"):
    _main(["--format=aliccp_csv", f"--input={tmp_path / 'missing.csv'}",
           f"--output_dir={tmp_path / 'o'}"])


def test_training_job_on_converted_aliccp_raw(tmp_path):
  """Multivalent lists go through fit, evaluation and the model's outputs."""
  from pipelines.training import train_lib
  folder = write_aliccp_raw(tmp_path / "raw", samples=120, sessions=6)
  _convert("aliccp_raw", folder, tmp_path / "data", valid_fraction=0.25)
  config = overrides.apply(experiments.get_preset("tiny"), [
      "train.batch_size=16", "train.eval_batch_size=64",
      "train.steps_per_epoch=3", "train.steps_per_execution=1"])
  result = train_lib.train(config, str(tmp_path / "model"),
                          str(tmp_path / "data"), verbose=0,
                          log=lambda _: None)
  schema = result["schema"]
  assert schema.has_multivalent and "f110_14" in schema.feature_names
  assert result["valid"]["num_examples"] == 30
  assert np.isfinite(result["valid"]["ctr_logloss"])
