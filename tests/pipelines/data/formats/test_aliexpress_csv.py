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
  # The search session: a row key, not a feature.
  assert source.keys == ("search_id",)
  np.testing.assert_array_equal(concat_column(blocks, "search_id", "keys"),
                                [int(r["search_id"]) for r in rows])


def test_converted_aliexpress_keeps_the_search_session_for_evaluation(
    shared_data_dir, tmp_path):
  """The records hold `search_id` beside the features; the schema names it
  a row key, read only with `with_keys` (training batches never see it)."""
  from adaftr_tf import evaluation
  from adaftr_tf import features as F
  from pipelines.data import reader
  from tests.helpers.conversion import convert
  path = os.path.join(shared_data_dir, "aliexpress_train_sample.csv")
  convert("aliexpress_csv", path, tmp_path / "out", valid_fraction=0.0)
  schema = F.FeatureSchema.load(str(tmp_path / "out"))
  assert schema.keys == ("search_id",)
  assert "search_id" not in schema.feature_names
  assert "search_id" not in schema.serving_spec()
  assert evaluation.group_field("auto", schema) == "search_id"
  with open(path) as f:
    rows = list(csv.DictReader(f))
  dataset = reader.make_dataset(str(tmp_path / "out"), "train", schema, 1000,
                                training=False, with_keys=True)
  (features, labels, extra), = list(dataset)
  np.testing.assert_array_equal(extra["search_id"],
                                [int(r["search_id"]) for r in rows])
  np.testing.assert_array_equal(features["categorical_7"],
                                [int(r["categorical_7"]) for r in rows])
  plain = next(iter(reader.make_dataset(str(tmp_path / "out"), "train",
                                        schema, 1000, training=False)))
  assert len(plain) == 2 and "search_id" not in plain[0]
