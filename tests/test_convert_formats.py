"""The readers on the real sample rows in ../shared/data and on raw layouts.

Every check compares the parsed blocks with an independent reading of the
same file written here with the csv module / str.split.
"""

import csv
import os

import numpy as np
import pytest

from pipelines.data import formats
from pipelines.data.formats import base

from tests.helpers.samples import write_aliccp_raw, write_aliexpress_raw


def _read_all(layout, path, split="train"):
  source = formats.get(layout).sources(path)[split]
  blocks = list(source.blocks(base.BadRows(skip=False), None))
  return source, blocks


def _column(blocks, name, kind):
  return np.concatenate([getattr(b, kind)[name] for b in blocks])


def test_aliexpress_csv_real_rows(shared_data_dir):
  path = os.path.join(shared_data_dir, "aliexpress_train_sample.csv")
  source, blocks = _read_all("aliexpress_csv", path)
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 100 and source.count_rows() == 100
  assert source.categorical == tuple(f"categorical_{i}" for i in range(1, 17))
  assert len(source.numerical) == 63
  np.testing.assert_array_equal(_column(blocks, "categorical_7", "ids"),
                                [int(r["categorical_7"]) for r in rows])
  np.testing.assert_array_equal(_column(blocks, "numerical_40", "values"),
                                [float(r["numerical_40"]) for r in rows])
  click = np.concatenate([b.click for b in blocks])
  conversion = np.concatenate([b.conversion for b in blocks])
  assert click.sum() == 60 and conversion.sum() == 2
  assert np.all(click >= conversion)
  np.testing.assert_array_equal(np.concatenate([b.lines for b in blocks]),
                                np.arange(2, 102))


def test_aliccp_csv_real_rows(shared_data_dir):
  path = os.path.join(shared_data_dir, "ali_ccp_train_sample.csv")
  source, blocks = _read_all("aliccp_csv", path)
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 100
  assert source.categorical[:3] == ("f101", "f121", "f122")
  assert "f150_14" in source.categorical
  assert source.numerical[0] == "D109_14" and len(source.numerical) == 8
  np.testing.assert_array_equal(_column(blocks, "f205", "ids"),
                                [int(r["205"]) for r in rows])
  np.testing.assert_allclose(_column(blocks, "D853", "values"),
                             [float(r["D853"]) for r in rows])
  assert sum(b.click.sum() for b in blocks) == 7
  assert sum(b.conversion.sum() for b in blocks) == 1


def test_aliccp_text_real_rows_keep_every_token(shared_data_dir):
  path = os.path.join(shared_data_dir, "small.txt")
  source, blocks = _read_all("aliccp_text", path)
  assert len(blocks) == 1 and len(blocks[0]) == 10
  block = blocks[0]
  with open(path) as f:
    lines = f.read().splitlines()
  for i, line in enumerate(lines):
    cells = line.split(",")
    assert block.click[i] == int(cells[1])
    assert block.conversion[i] == int(cells[2])
    expected = {}
    for token in cells[3:]:  # the first token included
      field, feature_id = token.split(":")
      expected.setdefault("f" + field, []).append(int(feature_id))
    for name, ids in expected.items():
      column = block.lists[name]
      got = column.values[column.row_splits[i]:column.row_splits[i + 1]]
      assert got.tolist() == ids, (i, name)
  lengths = block.lists["f110_14"].lengths
  assert lengths.min() > 300  # ~342 ids each: a list, not one id
  assert block.lists["f210"].lengths.max() >= 3
  assert block.click.sum() == 2 and block.conversion.sum() == 1


def test_aliexpress_raw_join_and_labels(tmp_path):
  folder = write_aliexpress_raw(tmp_path / "raw")
  sources = formats.get("aliexpress_raw").sources(folder)
  assert set(sources) == {"train", "test"}
  blocks = list(sources["train"].blocks(base.BadRows(False), None))
  users = {}
  with open(os.path.join(folder, "us_user_train.csv")) as f:
    for line in f:
      cells = line.strip().split(",")
      users[cells[0]] = cells
  with open(os.path.join(folder, "us_item_train.csv")) as f:
    items = [line.strip().split(",") for line in f]
  ids = {k: _column(blocks, k, "ids") for k in ("categorical_1",
                                                "categorical_9",
                                                "categorical_10")}
  np.testing.assert_array_equal(ids["categorical_1"],
                                [int(users[i[0]][1]) for i in items])
  np.testing.assert_array_equal(ids["categorical_9"],
                                [int(users[i[0]][32]) for i in items])
  np.testing.assert_array_equal(ids["categorical_10"],
                                [int(i[18]) for i in items])
  np.testing.assert_allclose(_column(blocks, "numerical_23", "values"),
                             [float(users[i[0]][30]) for i in items])
  np.testing.assert_allclose(_column(blocks, "numerical_24", "values"),
                             [float(i[1]) for i in items])
  label = np.array([int(i[48]) for i in items])
  np.testing.assert_array_equal(np.concatenate([b.click for b in blocks]),
                                label >= 1)
  np.testing.assert_array_equal(np.concatenate([b.conversion for b in blocks]),
                                label == 2)


def test_aliexpress_raw_picks_country_by_file(tmp_path):
  write_aliexpress_raw(tmp_path, cc="nl", splits=("train",))
  write_aliexpress_raw(tmp_path, cc="us", splits=("train",))
  with pytest.raises(FileNotFoundError, match="2 AliExpress countries"):
    formats.get("aliexpress_raw").sources(str(tmp_path))
  sources = formats.get("aliexpress_raw").sources(
      str(tmp_path / "nl_item_train.csv"))
  assert sources["train"].paths == [str(tmp_path / "nl_item_train.csv")]


def test_aliccp_raw_joins_common_features(tmp_path):
  folder = write_aliccp_raw(tmp_path / "ccp", splits=("train",))
  _, blocks = _read_all("aliccp_raw", folder)
  block = blocks[0]
  with open(os.path.join(folder, "common_features_train.csv")) as f:
    common = {c[0]: c[2] for c in (line.rstrip("\n").split(",") for line in f)}
  with open(os.path.join(folder, "sample_skeleton_train.csv")) as f:
    skeleton = [line.rstrip("\n").split(",") for line in f]
  for i, cells in enumerate(skeleton):
    tokens = common[cells[3]].split("\x01") + cells[5].split("\x01")
    expected = {}
    for token in tokens:
      field, rest = token.split("\x02")
      expected.setdefault("f" + field, []).append(int(rest.split("\x03")[0]))
    for name, ids in expected.items():
      column = block.lists[name]
      assert column.values[column.row_splits[i]:
                           column.row_splits[i + 1]].tolist() == ids


def test_missing_files_and_unknown_format_are_named(tmp_path):
  with pytest.raises(ValueError, match="valid formats: aliexpress_csv"):
    formats.get("criteo")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    formats.get("aliccp_text").sources(str(tmp_path / "nope.txt"))
  with pytest.raises(FileNotFoundError, match="sample_skeleton_train.csv"):
    formats.get("aliccp_raw").sources(str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"train\.csv"):
    formats.get("aliexpress_csv").sources(str(tmp_path))


def test_wrong_header_is_named(tmp_path):
  path = tmp_path / "train.csv"
  path.write_text("search_id,categorical_1,click\n1,2,0\n")
  with pytest.raises(ValueError, match=r"train\.csv:1: unexpected header"):
    formats.get("aliexpress_csv").sources(str(path))
