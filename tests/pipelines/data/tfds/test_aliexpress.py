"""Tests of tfds/aliexpress.py: the AliExpress builder on a tiny manual_dir,
offline: same rows as the converter."""

import pytest
import tensorflow_datasets as tfds

import pipelines.data.tfds  # noqa: F401  (registers the builders)
from tests.helpers.conversion import convert, prepare_tfds
from tests.helpers.samples import write_aliexpress_raw


def test_aliexpress_builder_matches_converter(tmp_path):
  manual = tmp_path / "manual"
  write_aliexpress_raw(manual / "AliExpress_US", cc="us")
  builder = prepare_tfds("aliexpress/us", manual, tmp_path / "tfds")
  assert set(builder.info.splits) == {"train", "validation", "test"}
  report = convert("aliexpress_raw", manual / "AliExpress_US",
                      tmp_path / "out")
  for tfds_split, split in (("train", "train"), ("validation", "valid"),
                            ("test", "test")):
    assert builder.info.splits[tfds_split].num_examples == \
        report["splits"][split]["rows"]
  ds = tfds.load("aliexpress/us", split="validation", data_dir=str(
      tmp_path / "tfds"), download=False)
  example = next(iter(ds))
  assert set(example) >= {"categorical_1", "categorical_16", "numerical_63",
                          "click", "conversion"}
  rows = list(tfds.as_numpy(ds))
  assert sum(r["click"] for r in rows) == report["splits"]["valid"]["clicks"]


def test_aliexpress_builder_names_missing_files(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match="nl_item_train.csv"):
    prepare_tfds("aliexpress/nl", tmp_path / "manual", tmp_path / "tfds")
