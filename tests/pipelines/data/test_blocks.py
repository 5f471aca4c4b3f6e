"""Tests for pipelines/data/blocks.py: row-block records decode to exactly the
columns the per-row records parse to (every dtype and feature kind, the last
partial block), re-serialise to per-row Examples, and fail clearly."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.data import blocks
from pipelines.data import records

ROWS = 23
BLOCK = 7  # blocks of 7, 7, 7 and a partial 2


def _columns(rows=ROWS, seed=0):
  """Every supported dtype and kind: ints (signed, unsigned, bool), floats
  (16/32/64, extremes, NaN), variable-length ids with empty lists."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(0, 4, rows)
  lengths[:3] = 0   # the whole first block has empty lists in one column
  return {
      "i8": rng.integers(-128, 127, rows).astype(np.int8),
      "i16": rng.integers(-2**15, 2**15 - 1, rows).astype(np.int16),
      "i32": rng.integers(-2**31, 2**31 - 1, rows).astype(np.int32),
      "i64": rng.integers(-2**62, 2**62, rows),
      "u8": rng.integers(0, 255, rows).astype(np.uint8),
      "u64": rng.integers(0, 2**62, rows).astype(np.uint64),
      "flag": rng.random(rows) < 0.5,
      "f16": rng.normal(size=rows).astype(np.float16),
      "f32": rng.random(rows).astype(np.float32),
      "f64": np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45, 3.4e38, 1.1] *
                      rows)[:rows],
      "ids": records.RaggedColumn.from_lengths(
          rng.integers(0, 2**40, int(lengths.sum())), lengths),
      "empty": records.RaggedColumn(np.zeros(0, np.int64),
                                    np.zeros(rows + 1, np.int64)),
  }


def _spec(columns):
  """The per-row parse spec of `columns`."""
  spec = {}
  for name, values in columns.items():
    if isinstance(values, records.RaggedColumn):
      spec[name] = tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64)
    else:
      spec[name] = tf.io.FixedLenFeature(
          [], tf.float32 if values.dtype.kind == "f" else tf.int64)
  return spec


def _assert_same(got, want):
  assert set(got) == set(want)
  for name, value in want.items():
    if isinstance(value, tf.RaggedTensor):
      assert isinstance(got[name], tf.RaggedTensor), name
      assert got[name].row_splits.dtype == value.row_splits.dtype
      np.testing.assert_array_equal(got[name].row_splits, value.row_splits,
                                    err_msg=name)
      value, other = value.flat_values, got[name].flat_values
    else:
      other = got[name]
    assert other.dtype == value.dtype, name
    np.testing.assert_array_equal(other.numpy(), value.numpy(), err_msg=name)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """(columns, per-row file, block file)."""
  root = tmp_path_factory.mktemp("blocks")
  columns = _columns()
  rows_path, blocks_path = str(root / "rows"), str(root / "blocks")
  assert records.write_examples(columns, rows_path) == ROWS
  assert blocks.write_blocks(columns, blocks_path, BLOCK) == ROWS
  return columns, rows_path, blocks_path


def _serialized(path):
  return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def test_blocks_decode_to_the_per_row_records_columns(written):
  columns, rows_path, blocks_path = written
  spec = _spec(columns)
  stored = _serialized(blocks_path)
  assert len(stored) == 4   # 7 + 7 + 7 + 2: the last block is partial
  want = tf.io.parse_example(_serialized(rows_path), spec)
  _assert_same(blocks.decode(tf.constant(stored), spec), want)
  # A block at a time, and the partial block alone.
  parts = [blocks.decode(tf.constant([s]), spec) for s in stored]
  assert [len(p["i64"]) for p in parts] == [7, 7, 7, 2]
  _assert_same(parts[-1], tf.io.parse_example(_serialized(rows_path)[21:],
                                              spec))
  # Some columns only: the others are not decoded.
  subset = {k: spec[k] for k in ("f32", "ids")}
  _assert_same(blocks.decode(tf.constant(stored), subset),
               {k: want[k] for k in subset})


def test_blocks_re_serialise_to_per_row_examples(written):
  columns, rows_path, blocks_path = written
  spec = _spec(columns)
  per_row = [e for s in _serialized(blocks_path) for e in blocks.to_examples(s)]
  assert len(per_row) == ROWS
  _assert_same(tf.io.parse_example(per_row, spec),
               tf.io.parse_example(_serialized(rows_path), spec))
  first = _serialized(blocks_path)[0]
  assert len(blocks.to_examples(first, limit=3)) == 3
  assert blocks.count_rows([blocks_path]) == ROWS


def test_blocks_are_smaller_than_rows(written):
  _, rows_path, blocks_path = written
  assert (tf.io.gfile.stat(blocks_path).length
          < tf.io.gfile.stat(rows_path).length)


def test_zero_rows_write_an_empty_file(tmp_path):
  path = str(tmp_path / "empty")
  assert blocks.write_blocks({"x": np.zeros(0, np.int64)}, path) == 0
  assert _serialized(path) == [] and blocks.count_rows([path]) == 0


def test_write_sharded_keeps_the_row_order(tmp_path):
  columns = _columns(50)
  paths = blocks.write_sharded(columns, str(tmp_path), "train", 3, 8)
  assert [p.rsplit("/", 1)[1] for p in paths] == [
      records.shard_name("train", i, 3) for i in range(3)]
  spec = _spec(columns)
  stored = [s for p in paths for s in _serialized(p)]
  assert len(stored) == 8   # shards of 16, 17, 17 rows: 2, 3, 3 blocks
  rows_path = str(tmp_path / "rows")
  records.write_examples(columns, rows_path)
  _assert_same(blocks.decode(tf.constant(stored), spec),
               tf.io.parse_example(_serialized(rows_path), spec))


@pytest.mark.parametrize("columns, block_rows, match", [
    ({"x": np.zeros(3)}, 0, "block_rows must be >= 1"),
    ({"block/rows": np.zeros(3)}, 2, "clashes with the row-block keys"),
    ({"x/lengths": np.zeros(3)}, 2, "clashes with the row-block keys"),
    ({"x": np.zeros(3), "y": np.zeros(2)}, 2, "column 'y' has 2 rows"),
    ({"x": np.array(["a"])}, 2, "unsupported dtype"),
])
def test_bad_columns_raise(tmp_path, columns, block_rows, match):
  with pytest.raises(ValueError, match=match):
    blocks.write_blocks(columns, str(tmp_path / "x"), block_rows)


def test_records_that_are_not_whole_blocks_fail_naming_the_column(written):
  columns, rows_path, blocks_path = written
  spec = _spec(columns)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="is this a row-block file"):
    blocks.decode(tf.constant(_serialized(rows_path)[:2]), spec)
  block = tf.train.Example.FromString(_serialized(blocks_path)[0])
  del block.features.feature["f32"].float_list.value[-1]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="f32 has one value per row"):
    blocks.decode(tf.constant([block.SerializeToString()]), spec)
  block = tf.train.Example.FromString(_serialized(blocks_path)[-1])
  block.features.feature["ids"].int64_list.value.append(5)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="ids holds the ids its lengths count"):
    blocks.decode(tf.constant([block.SerializeToString()]), spec)
