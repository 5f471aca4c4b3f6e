"""Tests of the `python -m pipelines.convert` entrypoint (its absl main): a
sample CSV, a missing input, and `--format=tfds` converting a prepared TFDS
dataset exactly like its raw files."""

import json
import os

import pytest

from adaftr_tf import features as F
from pipelines import convert as convert_main
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
