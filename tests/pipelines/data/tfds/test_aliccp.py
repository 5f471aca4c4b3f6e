"""Tests of tfds/aliccp.py: the Ali-CCP builder on a tiny manual_dir, offline:
same rows as the converter, lists kept, bad rows named."""

import pytest
import tensorflow_datasets as tfds

import pipelines.data.tfds  # noqa: F401  (registers the builders)
from pipelines.data.formats import base
from tests.helpers.conversion import convert, prepare_tfds
from tests.helpers.samples import (aliccp_raw_lines, write_aliccp_raw,
                                   write_lines)


def test_aliccp_builder_keeps_lists(tmp_path):
  manual = tmp_path / "manual"
  write_aliccp_raw(manual, cwc_every=9)
  ds, info = tfds.load(  # offline: prepares from manual_dir, then loads
      "ali_ccp/raw", split="train", data_dir=str(tmp_path / "tfds"),
      with_info=True, download_and_prepare_kwargs={
          "download_config": tfds.download.DownloadConfig(
              manual_dir=str(manual))})
  report = convert("aliccp_raw", manual, tmp_path / "out")
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
    prepare_tfds("ali_ccp/raw", manual, tmp_path / "tfds")
