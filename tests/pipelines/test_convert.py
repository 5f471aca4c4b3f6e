"""Tests of the `python -m pipelines.convert` entrypoint (its absl main): a
sample CSV, a missing input, and `--format=tfds` converting a prepared TFDS
dataset exactly like its raw files."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from pipelines import convert as convert_main
from pipelines.data import layout
from pipelines.data import reader
from pipelines.data.tfds import common
from tests.helpers.conversion import (assert_same_conversion, convert,
                                      prepare_tfds)
from tests.helpers.flags import run_main
from tests.helpers.samples import aliccp_from_sample


def _main(argv):
  return run_main(convert_main, argv, "convert")


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


@pytest.mark.parametrize("fmt", ["aliccp_raw",        # multi-valued fields
                                 "aliexpress_csv"])   # row keys
def test_both_record_layouts_hold_and_read_the_same_rows(tmp_path, capsys,
                                                         shared_data_dir,
                                                         fmt):
  path = (aliccp_from_sample(shared_data_dir, tmp_path / "raw")
          if fmt == "aliccp_raw" else
          os.path.join(shared_data_dir, "aliexpress_train_sample.csv"))
  common_flags = [f"--format={fmt}", f"--input={path}", "--noprogress",
                  "--hash_buckets=1000"]
  _main(common_flags + [f"--output_dir={tmp_path / 'blocks'}",
                        "--block_rows=7"])
  _main(common_flags + [f"--output_dir={tmp_path / 'rows'}",
                        "--record_layout=rows"])
  capsys.readouterr()
  dirs = [str(tmp_path / name) for name in ("blocks", "rows")]
  assert [layout.load(d) for d in dirs] == [
      layout.Layout("blocks", 7), layout.ROWS_LAYOUT]
  schema = F.FeatureSchema.load(dirs[1])
  assert F.FeatureSchema.load(dirs[0]) == schema
  assert all(f.encoding == "hash" for f in schema.categorical)
  assert schema.has_multivalent or schema.keys
  for split in ("train", "valid"):
    got, want = ([tf.train.Example.FromString(e)   # maps compare unordered
                  for e in layout.split_examples(d, split)] for d in dirs)
    assert got == want
    got, want = (list(reader.make_dataset(d, split, schema, 4,
                                          training=False, with_keys=True))
                 for d in dirs)   # one shard: both in file order
    assert len(got) == len(want) > (1 if split == "train" else 0)
    for a, b in zip(got, want):
      assert len(a) == (3 if schema.keys else 2)
      for x, y in zip(tf.nest.flatten(a, expand_composites=True),
                      tf.nest.flatten(b, expand_composites=True)):
        np.testing.assert_array_equal(x, y)


def test_aliccp_tfds_converts_like_raw_from_the_command_line(tmp_path,
                                                             shared_data_dir):
  raw = aliccp_from_sample(shared_data_dir, tmp_path / "manual")
  prepare_tfds("ali_ccp/raw", raw, tmp_path / "tfds")
  _main(["--format=tfds", "--input=ali_ccp", f"--output_dir={tmp_path / 'out'}",
         f"--tfds_data_dir={tmp_path / 'tfds'}", "--noprogress"])
  with open(tmp_path / "out" / "data_report.json") as f:
    report = json.load(f)
  want = convert("aliccp_raw", raw, tmp_path / "raw",
                  valid_fraction=common.VALID_FRACTION)
  assert_same_conversion(str(tmp_path / "out"), str(tmp_path / "raw"),
                          report, want)
  schema = F.FeatureSchema.load(str(tmp_path / "out"))
  assert schema.has_multivalent and "f150_14" in schema.feature_names
  with pytest.raises(SystemExit, match="--valid_fraction=0.2 does not apply"):
    _main(["--format=tfds", "--input=ali_ccp", "--valid_fraction=0.2",
           f"--output_dir={tmp_path / 'o2'}",
           f"--tfds_data_dir={tmp_path / 'tfds'}"])
