"""Tests of formats/aliexpress_raw.py: user and item files joined on the search
id, labels, the country picked by file; and the generated sample files."""

import os

import numpy as np
import pytest

from pipelines.data import formats
from pipelines.data.formats import base
from tests.helpers.conversion import concat_column
from tests.helpers.samples import aliexpress_raw_lines, write_aliexpress_raw


def test_aliexpress_raw_sample_follows_the_layout():
  users, items = aliexpress_raw_lines()
  assert {len(u.split(",")) for u in users} == {33}
  assert {len(i.split(",")) for i in items} == {49}
  assert {i.split(",")[-1] for i in items} == {"0", "1", "2"}
  assert {i.split(",")[0] for i in items} == {u.split(",")[0] for u in users}


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
  ids = {k: concat_column(blocks, k, "ids")
         for k in ("categorical_1", "categorical_9", "categorical_10")}
  np.testing.assert_array_equal(ids["categorical_1"],
                                [int(users[i[0]][1]) for i in items])
  np.testing.assert_array_equal(ids["categorical_9"],
                                [int(users[i[0]][32]) for i in items])
  np.testing.assert_array_equal(ids["categorical_10"],
                                [int(i[18]) for i in items])
  np.testing.assert_allclose(concat_column(blocks, "numerical_23", "values"),
                             [float(users[i[0]][30]) for i in items])
  np.testing.assert_allclose(concat_column(blocks, "numerical_24", "values"),
                             [float(i[1]) for i in items])
  label = np.array([int(i[48]) for i in items])
  np.testing.assert_array_equal(np.concatenate([b.click for b in blocks]),
                                label >= 1)
  np.testing.assert_array_equal(np.concatenate([b.conversion for b in blocks]),
                                label == 2)
  np.testing.assert_array_equal(concat_column(blocks, "search_id", "keys"),
                                [int(i[0]) for i in items])


def test_aliexpress_raw_picks_country_by_file(tmp_path):
  write_aliexpress_raw(tmp_path, cc="nl", splits=("train",))
  write_aliexpress_raw(tmp_path, cc="us", splits=("train",))
  with pytest.raises(FileNotFoundError, match="2 AliExpress countries"):
    formats.get("aliexpress_raw").sources(str(tmp_path))
  sources = formats.get("aliexpress_raw").sources(
      str(tmp_path / "nl_item_train.csv"))
  assert sources["train"].paths == [str(tmp_path / "nl_item_train.csv")]
