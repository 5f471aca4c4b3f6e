"""TFDS builders on a tiny manual_dir, offline: same rows as the converter."""

import pytest
import tensorflow_datasets as tfds

import pipelines.data.tfds  # noqa: F401  (registers the builders)
from pipelines.data.formats import base
from pipelines.data.formats import conversion

from tests.helpers.samples import aliccp_raw_lines, write_aliccp_raw
from tests.helpers.samples import write_aliexpress_raw, write_lines


def _prepare(name, manual_dir, data_dir):
  builder = tfds.builder(name, data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir)))
  return builder


def _converted(layout, folder, out):
  return conversion.convert(layout, str(folder), str(out),
                            conversion.Options(progress=False),
                            log=lambda _: None)


def test_aliexpress_builder_matches_converter(tmp_path):
  manual = tmp_path / "manual"
  write_aliexpress_raw(manual / "AliExpress_US", cc="us")
  builder = _prepare("aliexpress/us", manual, tmp_path / "tfds")
  assert set(builder.info.splits) == {"train", "validation", "test"}
  report = _converted("aliexpress_raw", manual / "AliExpress_US",
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
    _prepare("aliexpress/nl", tmp_path / "manual", tmp_path / "tfds")


def test_aliccp_builder_keeps_lists(tmp_path):
  manual = tmp_path / "manual"
  write_aliccp_raw(manual, cwc_every=9)
  ds, info = tfds.load(  # offline: prepares from manual_dir, then loads
      "ali_ccp/raw", split="train", data_dir=str(tmp_path / "tfds"),
      with_info=True, download_and_prepare_kwargs={
          "download_config": tfds.download.DownloadConfig(
              manual_dir=str(manual))})
  report = _converted("aliccp_raw", manual, tmp_path / "out")
  for split, converted in (("train", "train"), ("validation", "valid"),
                           ("test", "test")):
    assert info.splits[split].num_examples == \
        report["splits"][converted]["rows"]
  rows = list(tfds.as_numpy(ds))
  skeleton, _ = aliccp_raw_lines(seed=0, cwc_every=9)
  lists = sorted(len(r["f210"]) for r in rows)
  assert lists[0] == 1 and lists[-1] == 2  # every 7th sample repeats 210
  assert all(len(r["f110_14"]) >= 2 for r in rows)
  assert all(r["f126"] == -1 for r in rows)  # field absent: -1
  assert not any(r["conversion"] and not r["click"] for r in rows)
  assert len(skeleton) > len(rows)


def test_aliccp_builder_stops_at_bad_row(tmp_path):
  manual = tmp_path / "manual"
  write_aliccp_raw(manual, splits=("train",))
  skeleton, _ = aliccp_raw_lines()
  skeleton[2] = skeleton[2].replace(",", ";", 1)
  path = write_lines(manual / "sample_skeleton_train.csv", skeleton)
  with pytest.raises(base.BadRowError, match=f"{path}:3: wrong column count"):
    _prepare("ali_ccp/raw", manual, tmp_path / "tfds")
