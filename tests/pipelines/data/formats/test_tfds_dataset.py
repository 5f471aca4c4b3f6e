"""Tests of formats/tfds_dataset.py (`--format=tfds`): a prepared TFDS dataset
converts exactly like its raw files. The real sample rows (tests/data/samples) are
rewritten in the raw Tianchi layouts the builders read, each builder is
prepared from them, and its conversion is compared with the raw-layout
conversion of the same files: same vocabularies and normalisation, same
records in every split."""

import collections
import os

import numpy as np
import pytest

from pipelines.data.formats import base
from pipelines.data.formats import tfds_dataset
from pipelines.data.tfds import common
from tests.helpers.conversion import (assert_same_conversion, convert,
                                      prepare_tfds)
from tests.helpers.samples import aliexpress_from_sample


@pytest.mark.slow  # prepares a TFDS dataset, converts it twice and trains
def test_aliexpress_tfds_converts_like_raw_and_trains(tmp_path,
                                                      shared_data_dir):
  from adaftr_tf import experiments
  from pipelines.training import train_lib
  raw = aliexpress_from_sample(shared_data_dir, tmp_path / "manual")
  prepare_tfds("aliexpress/us", raw, tmp_path / "tfds")
  report = convert("tfds", "aliexpress/us", tmp_path / "out",
                    valid_fraction=0.0, tfds_data_dir=str(tmp_path / "tfds"))
  assert report["input"].startswith("tfds:aliexpress/us (")
  want = convert("aliexpress_raw", raw, tmp_path / "raw",
                  valid_fraction=common.VALID_FRACTION)
  assert_same_conversion(str(tmp_path / "out"), str(tmp_path / "raw"),
                          report, want)
  config = experiments.config_of("tiny", [
      "train.batch_size=16", "train.eval_batch_size=64",
      "train.steps_per_epoch=2", "train.steps_per_execution=1"])
  result = train_lib.train(config, str(tmp_path / "model"),
                           str(tmp_path / "out"), verbose=0, log=lambda _: None)
  assert 0 < report["splits"]["valid"]["clicks"] < result["valid"][
      "num_examples"] == report["splits"]["valid"]["rows"]
  assert np.isfinite(result["valid"]["ctr_logloss"])


def test_unknown_and_unprepared_datasets_are_named(tmp_path):
  options = {"valid_fraction": 0.0, "tfds_data_dir": str(tmp_path / "tfds")}
  with pytest.raises(ValueError, match=r"'mnist' is not a TFDS dataset .*"
                     "valid: aliexpress/nl, .*ali_ccp/raw"):
    convert("tfds", "mnist", tmp_path / "out", **options)
  with pytest.raises(FileNotFoundError, match="aliexpress/fr is not prepared "
                     "in .*download_and_prepare.*manual_dir"):
    convert("tfds", "aliexpress/fr", tmp_path / "out", **options)
  with pytest.raises(ValueError, match="--tfds_data_dir applies to "
                     "--format=tfds only"):
    convert("aliccp_text", tmp_path, tmp_path / "out", **options)
  assert not os.path.exists(tmp_path / "out")


def _examples(click, values, ids):
  return {"click": np.asarray(click), "conversion": np.zeros(len(click), int),
          "n": np.asarray(values, np.float32), "a": np.asarray(ids)}


FIELDS = common.ConverterFields(("a",), numerical=("n",), missing_id=-1)


def test_bad_examples_are_bad_rows_and_missing_ids_absent():
  columns = _examples([0, 2, 1, 0], [0.5, 0.1, np.nan, 0.3], [7, 8, 9, -1])
  with pytest.raises(base.BadRowError, match="ali/x/train:12: unknown label"):
    tfds_dataset.examples_block(columns, FIELDS, "ali/x/train", 10,
                                base.BadRows(skip=False))
  errors = base.BadRows(skip=True)
  block = tfds_dataset.examples_block(columns, FIELDS, "ali/x/train", 10,
                                      errors)
  assert collections.Counter(k for _, k in block.skipped) == {
      base.BAD_LABEL: 1, base.NON_FINITE: 1}
  assert block.index.tolist() == [10, 13]
  assert block.lists["a"].values.tolist() == [7]  # -1: missing
  assert block.lists["a"].lengths.tolist() == [1, 0]
  replaced = tfds_dataset.examples_block(
      columns, FIELDS, "ali/x/train", 0,
      base.BadRows(skip=True, non_finite="replace"))
  assert replaced.replaced["n"].tolist() == [False, True, False]
  assert replaced.values["n"][1] == 0.0
