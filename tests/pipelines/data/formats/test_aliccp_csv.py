"""Tests of formats/aliccp_csv.py on the real sample rows in tests/data/samples,
against an independent reading with the csv module."""

import csv
import os

import numpy as np

from tests.helpers.conversion import concat_column, read_blocks


def test_aliccp_csv_real_rows(shared_data_dir):
  path = os.path.join(shared_data_dir, "ali_ccp_train_sample.csv")
  source, blocks = read_blocks("aliccp_csv", path)
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 100
  assert source.categorical[:3] == ("f101", "f121", "f122")
  assert "f150_14" in source.categorical
  assert source.numerical[0] == "D109_14" and len(source.numerical) == 8
  np.testing.assert_array_equal(concat_column(blocks, "f205", "ids"),
                                [int(r["205"]) for r in rows])
  np.testing.assert_allclose(concat_column(blocks, "D853", "values"),
                             [float(r["D853"]) for r in rows])
  assert sum(b.click.sum() for b in blocks) == 7
  assert sum(b.conversion.sum() for b in blocks) == 1
