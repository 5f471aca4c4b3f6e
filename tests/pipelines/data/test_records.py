"""Tests for pipelines/data/records.py: batch-encoded tf.train.Example
TFRecords, the shard manifest and the corrupt-shard finder (on row-block
data, the training default)."""

import os
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from pipelines.data import layout
from pipelines.data import records
from pipelines.training import train_lib
from tests.helpers.data import tiny_config


def _columns(rows=257, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "a_int": rng.integers(-2**62, 2**62, rows),
      "b_small": rng.integers(0, 1000, rows).astype(np.int32),
      "c_bool": rng.random(rows) < 0.5,
      "d_float": rng.normal(size=rows),          # float64, rounded to float32
      "e_float32": rng.random(rows).astype(np.float32),
      "f_extreme": np.array([np.inf, -np.inf, 0.0, -0.0, 1e-45, 3.4e38] *
                            rows)[:rows],
      # Keys of 128+ bytes need multi-byte length varints.
      "long_float_" + "x" * 130: rng.random(rows),
      "long_int_é" + "y" * 130: rng.integers(0, 2**40, rows).astype(np.uint64),
  }


def _spec(columns):
  return {k: tf.io.FixedLenFeature(
      [], tf.float32 if v.dtype.kind == "f" else tf.int64)
          for k, v in columns.items()}


def _read(paths, spec):
  serialized = [r.numpy() for r in tf.data.TFRecordDataset(paths)]
  return serialized, {k: v.numpy() for k, v in
                      tf.io.parse_example(serialized, spec).items()}


def _expected(values):
  return values.astype(np.float32 if values.dtype.kind == "f" else np.int64)


def test_round_trip_is_exact(tmp_path):
  columns = _columns()
  path = str(tmp_path / "x.tfrecord")
  assert records.write_examples(columns, path) == 257
  serialized, parsed = _read([path], _spec(columns))
  assert len(serialized) == 257
  assert records.serialize_examples(columns) == serialized
  for k, v in columns.items():
    np.testing.assert_array_equal(parsed[k], _expected(v), err_msg=k)


def test_multiple_chunks_keep_row_order(tmp_path, monkeypatch):
  monkeypatch.setattr(records, "CHUNK_ROWS", 10)   # 26 chunks, 2 in flight
  columns = _columns()
  path = str(tmp_path / "x.tfrecord")
  records.write_examples(columns, path)
  _, parsed = _read([path], _spec(columns))
  for k, v in columns.items():
    np.testing.assert_array_equal(parsed[k], _expected(v), err_msg=k)


def test_bytes_match_python_protobuf(tmp_path):
  columns = _columns(rows=5)
  path = str(tmp_path / "x.tfrecord")
  records.write_examples(columns, path)
  spec = _spec(columns)
  serialized, _ = _read([path], spec)
  for i, record in enumerate(serialized):
    example = tf.train.Example()
    for k, v in columns.items():
      if v.dtype.kind == "f":
        example.features.feature[k].float_list.value.append(v[i])
      else:
        example.features.feature[k].int64_list.value.append(int(v[i]))
    assert tf.train.Example.FromString(record) == example
    ours = tf.io.parse_single_example(record, spec)
    theirs = tf.io.parse_single_example(example.SerializeToString(), spec)
    for k in spec:
      np.testing.assert_array_equal(ours[k].numpy(), theirs[k].numpy())


def test_only_one_kind_and_empty(tmp_path):
  ints = {"i": np.arange(7)}
  floats = {"f": np.linspace(0, 1, 7)}
  for name, cols in (("ints", ints), ("floats", floats)):
    path = str(tmp_path / f"{name}.tfrecord")
    assert records.write_examples(cols, path) == 7
    _, parsed = _read([path], _spec(cols))
    for k, v in cols.items():
      np.testing.assert_array_equal(parsed[k], _expected(v))
  path = str(tmp_path / "empty.tfrecord")
  assert records.write_examples({"i": np.zeros(0, np.int64)}, path) == 0
  assert os.path.exists(path)
  assert not list(tf.data.TFRecordDataset(path))


def test_nan_survives(tmp_path):
  path = str(tmp_path / "x.tfrecord")
  records.write_examples({"f": np.array([np.nan, 1.0])}, path)
  _, parsed = _read([path], _spec({"f": np.zeros(1)}))
  assert np.isnan(parsed["f"][0]) and parsed["f"][1] == 1.0


@pytest.mark.parametrize("columns, match", [
    ({"u": np.array([2**63], np.uint64)}, "'u'.*int64"),
    ({"a": np.arange(3), "b": np.arange(4)}, "'b'"),
    ({"a": np.zeros((3, 2))}, "'a'"),
    ({"a": np.array(["x", "y"])}, "'a'.*dtype"),
    ({"a": np.arange(3), "c": np.array([1j, 2j, 3j])}, "'c'"),
    ({}, "at least one column"),
])
def test_bad_columns_raise(tmp_path, columns, match):
  with pytest.raises(ValueError, match=match):
    records.write_examples(columns, str(tmp_path / "x.tfrecord"))


def test_write_sharded_contiguous_and_listed(tmp_path):
  columns = {"i": np.arange(10), "f": np.arange(10) / 10}
  directory = str(tmp_path / "data")
  paths = records.write_sharded(columns, directory, "train", 3)
  assert [os.path.basename(p) for p in paths] == [
      f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
  assert records.list_shards(directory, "train") == paths
  pieces = [_read([p], _spec(columns))[1]["i"] for p in paths]
  assert [len(p) for p in pieces] == [3, 3, 4]
  np.testing.assert_array_equal(np.concatenate(pieces), np.arange(10))
  assert records.shard_pattern(directory, "train").endswith(
      "train-*-of-*.tfrecord")
  with pytest.raises(ValueError, match="num_shards"):
    records.write_sharded(columns, directory, "train", 0)


def test_list_shards_missing_raises(tmp_path):
  records.write_sharded({"i": np.arange(4)}, str(tmp_path), "train", 2)
  with pytest.raises(FileNotFoundError, match="'valid'.*" + str(tmp_path)):
    records.list_shards(str(tmp_path), "valid")
  with pytest.raises(FileNotFoundError, match="nowhere"):
    records.list_shards(str(tmp_path / "nowhere"), "train")


def test_ragged_columns_round_trip(tmp_path, monkeypatch):
  monkeypatch.setattr(records, "RAGGED_BLOCK_CELLS", 50)  # several blocks
  monkeypatch.setattr(records, "CHUNK_ROWS", 7)
  rng = np.random.default_rng(1)
  lists = [list(rng.integers(-2**40, 2**40, rng.integers(0, 30)))
           for _ in range(40)]
  columns = {"ids": records.RaggedColumn.from_lists(lists),
             "empty": records.RaggedColumn.from_lists([[]] * 40),
             "i": np.arange(40), "f": np.linspace(0, 1, 40)}
  path = str(tmp_path / "x.tfrecord")
  assert records.write_examples(columns, path) == 40
  serialized = [r.numpy() for r in tf.data.TFRecordDataset(path)]
  parsed = tf.io.parse_example(serialized, {
      "ids": tf.io.RaggedFeature(tf.int64), "empty": tf.io.RaggedFeature(
          tf.int64), "i": tf.io.FixedLenFeature([], tf.int64),
      "f": tf.io.FixedLenFeature([], tf.float32)})
  assert parsed["ids"].to_list() == [[int(v) for v in x] for x in lists]
  assert parsed["empty"].to_list() == [[]] * 40
  np.testing.assert_array_equal(parsed["i"].numpy(), np.arange(40))
  example = tf.train.Example.FromString(serialized[3])
  assert list(example.features.feature["ids"].int64_list.value) == lists[3]


def test_ragged_column_slicing_and_validation(tmp_path):
  column = records.RaggedColumn.from_lists([[1, 2], [], [3]])
  assert len(column) == 3 and column.lengths.tolist() == [2, 0, 1]
  assert column.rows(1, 3).values.tolist() == [3]
  assert column.rows(1, 3).row_splits.tolist() == [0, 0, 1]
  bad = records.RaggedColumn(np.array([1, 2]), np.array([0, 3]))
  with pytest.raises(ValueError, match="ragged column 'x': row_splits"):
    records.write_examples({"x": bad}, str(tmp_path / "x.tfrecord"))
  floats = records.RaggedColumn(np.array([1.5]), np.array([0, 1]))
  with pytest.raises(ValueError, match="'x': values must be a 1-D integer"):
    records.write_examples({"x": floats}, str(tmp_path / "x.tfrecord"))
  with pytest.raises(ValueError, match="'y' has 2 rows"):
    records.write_examples({"x": column, "y": np.arange(2)},
                           str(tmp_path / "x.tfrecord"))


# --- corrupt TFRecord shards --------------------------------------------------

def _tiny(*items):
  return tiny_config("model.name=multitask", "train.steps_per_epoch=4",
                     "train.steps_per_execution=2",
                     "train.checkpoint_every_steps=2", *items)


@pytest.fixture
def data(tiny_data):
  return tiny_data


def _damaged_copy(data, tmp_path, damage):
  assert layout.load(data).is_blocks   # the training default: row blocks
  copy = str(tmp_path / "data")
  shutil.copytree(data, copy)
  shard = records.list_shards(copy, "train")[1]
  raw = bytearray(open(shard, "rb").read())
  open(shard, "wb").write(bytes(damage(raw)))
  return copy, shard


def _garble(raw):
  raw[len(raw) // 2: len(raw) // 2 + 64] = b"\xff" * 64
  return raw


def _cut_mid_record(raw):
  return raw[: len(raw) - 50]


def _cut_in_last_header(raw):
  """Ends the file 5 bytes into the last record's 12-byte header: TensorFlow's
  reader then stops silently, one record short."""
  start = last = 0
  while start < len(raw):
    last = start
    start += 16 + struct.unpack("<Q", bytes(raw[start:start + 8]))[0]
  return raw[: last + 5]


@pytest.mark.reliability
@pytest.mark.slow  # trains until the garbled record
def test_a_garbled_shard_stops_training_naming_the_file(data, tmp_path):
  copy, shard = _damaged_copy(data, tmp_path, _garble)  # same size
  records.check_manifest(copy, ("train", "valid"))
  assert records.find_corrupt_shard(data) is None
  assert records.find_corrupt_shard(copy)[0] == shard
  with pytest.raises(tf.errors.DataLossError,
                     match=f"TFRecord shard {shard} is corrupt"):
    train_lib.train(_tiny("train.steps_per_epoch=32"), str(tmp_path / "model"),
                   copy, verbose=0, log=lambda _: None)


@pytest.mark.reliability
@pytest.mark.parametrize("damage", [_cut_mid_record, _cut_in_last_header])
def test_a_truncated_shard_is_refused_before_training(data, tmp_path, damage):
  copy, shard = _damaged_copy(data, tmp_path, damage)
  if damage is _cut_in_last_header:  # what the manifest check guards against
    counts = [sum(1 for _ in tf.data.TFRecordDataset(p))
              for p in (records.list_shards(data, "train")[1], shard)]
    assert counts[1] == counts[0] - 1
  with pytest.raises(tf.errors.DataLossError,
                     match=f"TFRecord shard {shard} has \\d+ bytes, "
                           "shards.json records \\d+: the data in .* was "
                           "truncated or changed"):
    train_lib.train(_tiny(), str(tmp_path / "model"), copy, verbose=0,
                   log=lambda _: None)
  assert not os.path.exists(tmp_path / "model" / "steps")


# --- a non-local file system (ram://) -----------------------------------------

def _rewrite(path, data):
  tf.io.gfile.remove(path)  # ram:// "w" would append
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(data)


def test_corrupt_shard_found_on_ram(ram_synthetic_dir):
  assert records.find_corrupt_shard(ram_synthetic_dir) is None
  path = records.list_shards(ram_synthetic_dir, "test")[1]
  with tf.io.gfile.GFile(path, "rb") as f:
    data = bytearray(f.read())
  data[len(data) // 2] ^= 0xFF  # same size: the manifest cannot tell
  _rewrite(path, bytes(data))
  records.check_manifest(ram_synthetic_dir, F.SPLITS)
  found = records.find_corrupt_shard(ram_synthetic_dir)
  assert found is not None and found[0] == path
  _rewrite(path, bytes(data[:-3]))
  with pytest.raises(tf.errors.DataLossError, match=os.path.basename(path)):
    records.check_manifest(ram_synthetic_dir, F.SPLITS)
