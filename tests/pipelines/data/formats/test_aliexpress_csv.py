"""Tests of formats/aliexpress_csv.py on the real sample rows in tests/data/samples,
against an independent reading with the csv module."""

import csv
import os

import numpy as np

from tests.helpers.conversion import concat_column, read_blocks


def test_aliexpress_csv_real_rows(shared_data_dir):
  path = os.path.join(shared_data_dir, "aliexpress_train_sample.csv")
  source, blocks = read_blocks("aliexpress_csv", path)
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 100 and source.count_rows() == 100
  assert source.categorical == tuple(f"categorical_{i}" for i in range(1, 17))
  assert len(source.numerical) == 63
  np.testing.assert_array_equal(concat_column(blocks, "categorical_7", "ids"),
                                [int(r["categorical_7"]) for r in rows])
  np.testing.assert_array_equal(concat_column(blocks, "numerical_40", "values"),
                                [float(r["numerical_40"]) for r in rows])
  click = np.concatenate([b.click for b in blocks])
  conversion = np.concatenate([b.conversion for b in blocks])
  assert click.sum() == 60 and conversion.sum() == 2
  assert np.all(click >= conversion)
  np.testing.assert_array_equal(np.concatenate([b.lines for b in blocks]),
                                np.arange(2, 102))
