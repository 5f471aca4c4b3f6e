"""Tests for pipelines/data/layout.py: the record layout a data directory
records (blocks by default, rows for data written before), the config keys
that choose it, per-row Examples out of either layout."""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import overrides
from adaftr_tf.config import ConfigError
from pipelines.data import datadir
from pipelines.data import layout
from pipelines.data import reader
from pipelines.data import records
from pipelines.data import synthetic
from tests.helpers.data import SMALL_SYNTHETIC

SMALL_BLOCKS = layout.Layout(layout.BLOCKS, 32)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
  """(rows dir, blocks dir) of SMALL_SYNTHETIC (2 shards per split)."""
  root = tmp_path_factory.mktemp("layouts")
  dirs = []
  for name, chosen in (("rows", layout.ROWS_LAYOUT), ("blocks", SMALL_BLOCKS)):
    synthetic.write_synthetic_dataset(SMALL_SYNTHETIC, str(root / name),
                                      log=lambda _: None, layout=chosen)
    dirs.append(str(root / name))
  return dirs


def test_the_layout_is_recorded_in_schema_and_manifest(both):
  rows_dir, blocks_dir = both
  assert layout.load(rows_dir) == layout.ROWS_LAYOUT
  assert layout.load(blocks_dir) == SMALL_BLOCKS
  for name in (F.SCHEMA_FILE, records.MANIFEST_FILE):
    with open(os.path.join(blocks_dir, name)) as f:
      stored = json.load(f)
    assert (stored["layout"], stored["block_rows"]) == ("blocks", 32), name
  # The schema itself does not change with the layout.
  assert F.FeatureSchema.load(rows_dir) == F.FeatureSchema.load(blocks_dir)


def test_a_directory_that_records_no_layout_holds_rows(both, tmp_path):
  rows_dir, _ = both
  for name in (F.SCHEMA_FILE, records.MANIFEST_FILE):  # as written before
    path = os.path.join(rows_dir, name)
    with open(path) as f:
      stored = json.load(f)
    assert stored.pop("layout") == "rows" and "block_rows" not in stored
    with open(tmp_path / name, "w") as f:
      json.dump(stored, f)
  assert layout.load(str(tmp_path)) == layout.ROWS_LAYOUT
  assert layout.load(str(tmp_path / "nothing")) == layout.ROWS_LAYOUT


def test_disagreeing_or_bad_records_are_named(both, tmp_path):
  _, blocks_dir = both
  with open(os.path.join(blocks_dir, F.SCHEMA_FILE)) as f:
    stored = json.load(f)
  with open(tmp_path / F.SCHEMA_FILE, "w") as f:
    json.dump(stored, f)
  with open(tmp_path / records.MANIFEST_FILE, "w") as f:
    json.dump({"shards": {}, "layout": "blocks", "block_rows": 64}, f)
  with pytest.raises(ValueError, match="record layouts of schema.json and "
                     "shards.json differ"):
    layout.load(str(tmp_path))
  os.remove(tmp_path / records.MANIFEST_FILE)
  with open(tmp_path / F.SCHEMA_FILE, "w") as f:
    json.dump({**stored, "layout": "columns"}, f)
  with pytest.raises(ValueError, match="records a bad layout: layout="
                     "'columns' is not valid; choose one of \\('blocks', "
                     "'rows'\\)"):
    layout.load(str(tmp_path))


def test_bad_layouts_and_config_values_error_clearly():
  with pytest.raises(ValueError, match="choose one of \\('blocks', 'rows'\\)"):
    layout.Layout("columns")
  with pytest.raises(ValueError, match="block_rows=0 must be"):
    layout.Layout(layout.BLOCKS, 0)
  tiny = experiments.get_preset("tiny")
  with pytest.raises(ConfigError, match="data.layout='columns' is not valid; "
                     "choose one of \\('blocks', 'rows'\\)"):
    overrides.apply(tiny, ["data.layout=columns"]).validate()
  with pytest.raises(ConfigError, match="data.block_rows=0 must be > 0"):
    overrides.apply(tiny, ["data.block_rows=0"]).validate()
  config = overrides.apply(tiny, ["data.layout=rows", "data.block_rows=64"])
  assert layout.from_config(config.data) == layout.Layout("rows", 64)


def test_the_synthetic_folder_name_depends_on_the_layout():
  tiny = experiments.get_preset("tiny")
  names = {items: datadir.default_data_dir(overrides.apply(tiny, list(items)))
           for items in ((), ("data.block_rows=512",), ("data.layout=rows",))}
  assert len(set(names.values())) == 3
  # Per-row data keeps the name it had before the layouts existed.
  text = json.dumps(tiny.to_dict()["data"]["synthetic"], sort_keys=True)
  assert names[("data.layout=rows",)] == os.path.join(
      "data", "synthetic-" + hashlib.sha1(text.encode()).hexdigest()[:10])


def test_both_layouts_hold_the_same_rows(both):
  rows_dir, blocks_dir = both
  for split in F.SPLITS:
    want = layout.split_examples(rows_dir, split)
    got = layout.split_examples(blocks_dir, split)
    assert len(got) == len(want) == layout.count_rows(blocks_dir, split)
    spec = F.FeatureSchema.load(rows_dir).parse_spec(with_oracle=True)
    for name, values in tf.io.parse_example(want, spec).items():
      np.testing.assert_array_equal(
          tf.io.parse_example(got, spec)[name], values, err_msg=name)
  assert layout.split_examples(blocks_dir, "train", 40) == \
      layout.split_examples(blocks_dir, "train")[:40]


def test_per_row_directories_still_read(both):
  rows_dir, blocks_dir = both
  schema = F.FeatureSchema.load(rows_dir)
  out = []
  for data_dir in both:
    ds = reader.make_dataset(data_dir, "valid", schema, 50, training=False,
                             with_oracle=True)
    assert [len(b[1][F.CLICK]) for b in ds] == [50, 50, 20]
    out.append(ds.element_spec)
  assert out[0] == out[1]


def test_write_split_examples_gives_a_file_to_score(both, tmp_path):
  _, blocks_dir = both
  path = layout.write_split_examples(blocks_dir, "test",
                                     str(tmp_path / "x.tfrecord"), 5)
  stored = [r.numpy() for r in tf.data.TFRecordDataset(path)]
  assert stored == layout.split_examples(blocks_dir, "test", 5)
