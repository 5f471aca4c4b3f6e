"""Fast batch writing of `tf.train.Example` TFRecord files.

Building one Python protobuf per row costs ~0.5 ms, too slow for the ~0.5M-row
synthetic log. Rows are serialised a chunk at a time instead:

  * int fields: four `tf.io.encode_proto` calls, each over every (row, field)
    pair at once: Int64List -> Feature -> Features.FeatureEntry (key, value)
    -> Features (repeated `feature`).
  * float fields: a single float32 in a map entry has a fixed wire layout
    (`0A len key 12 08 | 12 06 0A 04 <4 bytes little-endian>`), so each row's
    float entries are one byte template per schema with the values copied in
    by NumPy. This is ~10x cheaper than encode_proto and floats are most fields.
  * variable-length int fields (`RaggedColumn`, e.g. Ali-CCP's behaviour
    lists): per field, one encode_proto over the rows with per-row sizes
    (`sizes[i] = len(row i)`, values padded to the longest row of a bounded
    sub-block), giving one `Features` message per row.
  * Concatenated serialisations of one message type merge (repeated fields
    append), so Features = int part + float part + list parts; a last
    encode_proto wraps it as Example.

The bytes parse exactly like those of `tf.train.Example.SerializeToString`
(integers are int64, floats are rounded once to float32); tests compare both.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import itertools
import json
import os
from typing import Mapping, NamedTuple, Sequence

import adaftr_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tensorflow as tf

# Rows serialised per chunk (~10 KB of intermediate strings per row), and how
# many chunks encode at once: two keeps both cores busy (encode_proto is
# single-threaded) while bounding memory.
CHUNK_ROWS = 20_000
PARALLEL_CHUNKS = 2
SHARD_SUFFIX = ".tfrecord"
# Cells of one padded [rows, longest list] block of a variable-length field.
RAGGED_BLOCK_CELLS = 1 << 21


class RaggedColumn(NamedTuple):
  """A variable-length int64 column: row i is `values[row_splits[i]:row_splits[i+1]]`.

  Attributes:
    values: [nnz] integer ids of every row, concatenated.
    row_splits: [rows + 1] int64 offsets into `values`; starts at 0.
  """

  values: np.ndarray
  row_splits: np.ndarray

  @classmethod
  def from_lists(cls, lists: Sequence[Sequence[int]]) -> "RaggedColumn":
    lengths = np.fromiter((len(x) for x in lists), np.int64, len(lists))
    values = np.fromiter((v for x in lists for v in x), np.int64,
                         int(lengths.sum()))
    return cls.from_lengths(values, lengths)

  @classmethod
  def from_lengths(cls, values, lengths) -> "RaggedColumn":
    splits = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=splits[1:])
    return cls(np.asarray(values), splits)

  @property
  def lengths(self) -> np.ndarray:
    return np.diff(self.row_splits)

  def __len__(self) -> int:  # rows, not the tuple's two fields
    return len(self.row_splits) - 1

  def rows(self, start: int, stop: int) -> "RaggedColumn":
    """Rows [start, stop) as a new column."""
    splits = self.row_splits[start:stop + 1]
    return RaggedColumn(self.values[splits[0]:splits[-1]], splits - splits[0])


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.int64),
    tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([], tf.string)])
def _encode_int_lists(padded, lengths, name):
  """Serialises one variable-length int field as a `Features` per row.

  Args:
    padded: [rows, longest] int64 values, row i valid up to `lengths[i]`.
    lengths: [rows] values per row (0 gives an empty Int64List).
    name: the feature key.

  Returns:
    [rows] serialised `tf.train.Features` holding only this field.
  """
  rows = tf.shape(padded)[0]
  lists = tf.io.encode_proto(lengths[:, None], [padded], ["value"],
                             "tensorflow.Int64List")
  features = tf.io.encode_proto(tf.ones([rows, 1], tf.int32), [lists[:, None]],
                                ["int64_list"], "tensorflow.Feature")
  keys = tf.fill([rows, 1], name)
  entries = tf.io.encode_proto(tf.ones([rows, 2], tf.int32),
                               [keys, features[:, None]], ["key", "value"],
                               "tensorflow.Features.FeatureEntry")
  return tf.io.encode_proto(tf.ones([rows, 1], tf.int32), [entries[:, None]],
                            ["feature"], "tensorflow.Features")


def _ragged_part(column: RaggedColumn, name: str) -> tf.Tensor:
  """[rows] serialised `Features` of one RaggedColumn, in bounded blocks."""
  lengths = column.lengths
  longest = max(int(lengths.max(initial=0)), 1)
  block = max(1, RAGGED_BLOCK_CELLS // longest)
  parts = []
  for start in range(0, max(len(column), 1), block):
    piece = column.rows(start, min(start + block, len(column)))
    piece_lengths = piece.lengths
    width = max(int(piece_lengths.max(initial=0)), 1)
    padded = np.zeros([len(piece), width], np.int64)
    padded[np.arange(width) < piece_lengths[:, None]] = piece.values
    parts.append(_encode_int_lists(padded, piece_lengths.astype(np.int32),
                                   tf.constant(name)))
  return tf.concat(parts, axis=0)


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.int64),
    tf.TensorSpec([None], tf.string),
    tf.TensorSpec([None], tf.string)])
def _encode_examples(ints, float_part, int_names):
  """Serialises rows into `tf.train.Example`s.

  Args:
    ints: [rows, num_int_fields] int64 values.
    float_part: [rows] serialised `feature` map entries of the float (and
      variable-length) fields.
    int_names: [num_int_fields] keys of the int fields.

  Returns:
    [rows] serialised `tf.train.Example` strings.
  """
  rows, num_fields = tf.shape(ints)[0], tf.shape(ints)[1]
  flat = tf.size(ints)
  lists = tf.io.encode_proto(
      tf.ones([flat, 1], tf.int32), [tf.reshape(ints, [-1, 1])],
      ["value"], "tensorflow.Int64List")
  features = tf.io.encode_proto(
      tf.ones([flat, 1], tf.int32), [lists[:, None]],
      ["int64_list"], "tensorflow.Feature")
  keys = tf.reshape(tf.tile(int_names[None, :], [rows, 1]), [-1, 1])
  entries = tf.io.encode_proto(
      tf.ones([flat, 2], tf.int32), [keys, features[:, None]],
      ["key", "value"], "tensorflow.Features.FeatureEntry")
  int_part = tf.io.encode_proto(
      tf.fill([rows, 1], num_fields), [tf.reshape(entries, [rows, -1])],
      ["feature"], "tensorflow.Features")
  feature_maps = tf.strings.join([int_part, float_part])
  return tf.io.encode_proto(
      tf.ones([rows, 1], tf.int32), [feature_maps[:, None]],
      ["features"], "tensorflow.Example")


def _varint(value: int) -> bytes:
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def _delimited(tag: int, payload: bytes) -> bytes:
  return bytes([tag]) + _varint(len(payload)) + payload


@functools.lru_cache(maxsize=16)
def _float_template(names: tuple[str, ...]):
  """Wire bytes of `Features.feature` entries holding one float each.

  Returns:
    (template [length] uint8, value byte positions [num_names, 4] int).
  """
  template = bytearray()
  offsets = []
  for name in names:
    feature = _delimited(0x12, _delimited(0x0A, bytes(4)))  # float_list.value
    entry = _delimited(0x0A, name.encode()) + _delimited(0x12, feature)
    template += _delimited(0x0A, entry)   # Features.feature (map entry)
    offsets.append(len(template) - 4)
  positions = np.asarray(offsets, np.int64)[:, None] + np.arange(4)
  return np.frombuffer(bytes(template), np.uint8), positions


def _float_part(values: np.ndarray, names: tuple[str, ...]) -> list[bytes]:
  """[rows, len(names)] float32 -> per-row serialised float feature entries."""
  if not names:
    return [b""] * len(values)
  template, positions = _float_template(names)
  buffer = np.tile(template, (len(values), 1))
  buffer[:, positions] = np.ascontiguousarray(values, "<f4").view(
      np.uint8).reshape(len(values), len(names), 4)
  width, data = buffer.shape[1], buffer.tobytes()
  return [data[i:i + width] for i in range(0, len(data), width)]


def _check_ragged(name: str, column: RaggedColumn) -> None:
  values, splits = np.asarray(column.values), np.asarray(column.row_splits)
  if values.ndim != 1 or values.dtype.kind not in "iu":
    raise ValueError(f"ragged column {name!r}: values must be a 1-D integer "
                     f"array, got dtype {values.dtype} shape {values.shape}")
  if (splits.ndim != 1 or len(splits) < 1 or splits[0] != 0 or
      splits[-1] != len(values) or np.any(np.diff(splits) < 0)):
    raise ValueError(f"ragged column {name!r}: row_splits must be 1-D, start "
                     f"at 0, never decrease and end at len(values)="
                     f"{len(values)}")


def column_kinds(columns: Mapping[str, np.ndarray]):
  """Validates columns and groups them by kind (both layouts' writers).

  Returns:
    (int_names, float_names, ragged_names, rows): names per kind and the
    common length.
  """
  if not columns:
    raise ValueError("write_examples needs at least one column")
  int_names, float_names, ragged_names, rows = [], [], [], None
  for name, values in columns.items():
    if isinstance(values, RaggedColumn):
      _check_ragged(name, values)
      length = len(values)
    else:
      values = np.asarray(values)
      if values.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D [rows], got shape "
                         f"{values.shape}")
      length = len(values)
    if rows is None:
      rows = length
    elif length != rows:
      raise ValueError(f"column {name!r} has {length} rows, but earlier "
                       f"columns have {rows}")
    if isinstance(values, RaggedColumn):
      ragged_names.append(name)
    elif values.dtype.kind in "iub":
      if values.dtype == np.uint64 and len(values) and \
          values.max() > np.iinfo(np.int64).max:
        raise ValueError(f"column {name!r} has uint64 values beyond the int64 "
                         "range of tf.train.Int64List")
      int_names.append(name)
    elif values.dtype.kind == "f":
      float_names.append(name)
    else:
      raise ValueError(f"column {name!r} has unsupported dtype {values.dtype}; "
                       "valid: integer or bool (-> int64 feature), float "
                       "(-> float32 feature), RaggedColumn (-> int64 list)")
  return int_names, float_names, ragged_names, rows


def _encoded_chunks(columns, int_names, float_names, ragged_names, chunks):
  """Yields the serialised Examples of each (start, stop) chunk, in order.

  PARALLEL_CHUNKS chunks encode in the background while the caller writes the
  previous one, so at most PARALLEL_CHUNKS + 1 encoded chunks are in memory.
  """
  int_keys = tf.constant(int_names, tf.string)
  float_keys = tuple(float_names)

  def encode(start, stop):
    ints = np.zeros([stop - start, 0], np.int64) if not int_names else \
        np.stack([np.asarray(columns[k][start:stop], np.int64)
                  for k in int_names], axis=1)
    floats = np.zeros([stop - start, 0], np.float32) if not float_names else \
        np.stack([np.asarray(columns[k][start:stop], np.float32)
                  for k in float_names], axis=1)
    extra = _float_part(floats, float_keys)
    if ragged_names:
      extra = tf.strings.join([extra] + [
          _ragged_part(columns[k].rows(start, stop), k) for k in ragged_names])
    return _encode_examples(ints, extra, int_keys).numpy()

  chunks = iter(chunks)
  with concurrent.futures.ThreadPoolExecutor(PARALLEL_CHUNKS) as pool:
    pending = collections.deque(
        pool.submit(encode, *chunk)
        for chunk in itertools.islice(chunks, PARALLEL_CHUNKS))
    while pending:
      done = pending.popleft().result()
      following = next(chunks, None)
      if following is not None:
        pending.append(pool.submit(encode, *following))
      yield done


def _write_files(columns: Mapping[str, np.ndarray],
                 plan: list[tuple[str, int, int]]) -> None:
  """Writes rows [lo, hi) of `columns` to each (path, lo, hi) of `plan`."""
  int_names, float_names, ragged_names, _ = column_kinds(columns)
  spans = [range(lo, hi, CHUNK_ROWS) for _, lo, hi in plan]
  # One stream of chunks across all files keeps both cores busy at file ends.
  encoded = _encoded_chunks(
      columns, int_names, float_names, ragged_names,
      [(s, min(s + CHUNK_ROWS, hi)) for span, (_, _, hi) in zip(spans, plan)
       for s in span])
  for span, (path, _, _) in zip(spans, plan):
    with tf.io.TFRecordWriter(path) as writer:
      for _ in span:
        for record in next(encoded):
          writer.write(record)


def serialize_examples(columns: Mapping[str, np.ndarray]) -> list[bytes]:
  """The serialised `tf.train.Example` of each row, as `write_examples`
  writes them (columns as there)."""
  int_names, float_names, ragged_names, rows = column_kinds(columns)
  chunks = [(s, min(s + CHUNK_ROWS, rows)) for s in range(0, rows, CHUNK_ROWS)]
  return [record for chunk in _encoded_chunks(
      columns, int_names, float_names, ragged_names, chunks) for record in chunk]


def write_examples(columns: Mapping[str, np.ndarray], path: str) -> int:
  """Writes one TFRecord file with one `tf.train.Example` per row.

  Args:
    columns: feature name -> [rows] array; integer (and bool) columns become
      int64 features, float columns float32 features, `RaggedColumn`s
      variable-length int64 lists (possibly empty). All of equal length.
    path: output file; its directory must exist.

  Returns:
    The number of rows written.

  Raises:
    ValueError: naming the column, for a length mismatch, a non-1-D array or
      an unsupported dtype.
  """
  _, _, _, rows = column_kinds(columns)
  _write_files(columns, [(path, 0, rows)])
  return rows


def shard_name(split: str, index: int, num_shards: int) -> str:
  return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def write_sharded(columns: Mapping[str, np.ndarray], directory: str, split: str,
                  num_shards: int) -> list[str]:
  """Writes `columns` as `num_shards` files, rows split contiguously.

  Args:
    columns: feature name -> [rows] array (see `write_examples`).
    directory: output directory, created when missing.
    split: split name used in the file names (`train-00000-of-00004.tfrecord`).
    num_shards: number of files (>= 1); shard sizes differ by at most one row.

  Returns:
    The written paths, in shard order.
  """
  _, _, _, rows = column_kinds(columns)
  plan = shard_plan(directory, split, rows, num_shards)
  _write_files(columns, plan)
  return [path for path, _, _ in plan]


def shard_plan(directory: str, split: str, rows: int,
               num_shards: int) -> list[tuple[str, int, int]]:
  """(path, first row, end row) of each of `num_shards` contiguous shards
  (sizes differ by at most one row); creates `directory`."""
  if num_shards < 1:
    raise ValueError(f"num_shards must be >= 1, got {num_shards}")
  tf.io.gfile.makedirs(directory)
  bounds = np.linspace(0, rows, num_shards + 1).astype(np.int64)
  return [(os.path.join(directory, shard_name(split, i, num_shards)),
           int(bounds[i]), int(bounds[i + 1])) for i in range(num_shards)]


def shard_pattern(directory: str, split: str) -> str:
  """Glob pattern matching every shard of `split` in `directory`."""
  return os.path.join(directory, f"{split}-*-of-*{SHARD_SUFFIX}")


def list_shards(directory: str, split: str) -> list[str]:
  """Sorted shard paths of `split`.

  Raises:
    FileNotFoundError: naming the pattern, when no shard matches.
  """
  paths = sorted(tf.io.gfile.glob(shard_pattern(directory, split)))
  if not paths:
    raise FileNotFoundError(
        f"no TFRecord shards for split {split!r} in {directory!r} (pattern "
        f"{shard_pattern(directory, split)}); write the data first (synthetic "
        "generator or converter) or fix --data_dir")
  return paths


def find_corrupt_shard(directory: str, splits=("train", "valid", "test")
                       ) -> tuple[str, str] | None:
  """(path, TensorFlow's message) of the first shard that cannot be read.

  Reads every record of every shard of `splits` (those present): meant for
  after a `tf.errors.DataLossError`, whose message names an offset but not
  the file.
  """
  for split in splits:
    if not tf.io.gfile.glob(shard_pattern(directory, split)):
      continue
    for path in list_shards(directory, split):
      try:
        for _ in tf.data.TFRecordDataset(path).batch(4096):
          pass
      except tf.errors.DataLossError as err:
        message = str(err).split("[Op:")[0].split("}}")[-1].strip()
        return path, message
  return None


def corrupt_shard_error(directory: str, err: tf.errors.DataLossError
                        ) -> tf.errors.DataLossError:
  """`err` (a DataLossError from a reader) restated with the corrupt file."""
  found = find_corrupt_shard(directory)
  where = (f"TFRecord shard {found[0]} is corrupt ({found[1]})" if found else
           f"a TFRecord shard in {directory} is corrupt ({err.message})")
  return tf.errors.DataLossError(
      None, None, f"{where}: regenerate or re-convert the data (checkpoints "
      "written so far are intact; the same command resumes from them)")


MANIFEST_FILE = "shards.json"  # shard name -> bytes, written with the data


def write_manifest(directory: str, layout: Mapping | None = None) -> str:
  """Records the byte size of every shard in `directory` (`shards.json`),
  and how the records are laid out (`layout`, see pipelines/data/layout.py).

  Written once a dataset is complete (synthetic generator, converter), so
  that `check_manifest` can tell a truncated or altered shard before
  training: TensorFlow's reader stops silently when a file ends inside a
  record header, and names no file for a damaged record.
  """
  sizes = {os.path.basename(p): tf.io.gfile.stat(p).length for p in sorted(
      tf.io.gfile.glob(os.path.join(directory, f"*-of-*{SHARD_SUFFIX}")))}
  path = os.path.join(directory, MANIFEST_FILE)
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump({"shards": sizes, **(layout or {})}, f, indent=1,
              sort_keys=True)
  return path


def check_manifest(directory: str, splits) -> None:
  """Each shard of `splits` has the size recorded when it was written.

  Data without a manifest (written by an older version) is not checked.

  Raises:
    tf.errors.DataLossError: naming the shard that is missing, unexpected,
      or of another size.
  """
  path = os.path.join(directory, MANIFEST_FILE)
  if not tf.io.gfile.exists(path):
    return
  with tf.io.gfile.GFile(path) as f:
    recorded = json.load(f).get("shards", {})
  for split in splits:
    expected = {n for n in recorded if n.startswith(f"{split}-")}
    present = {os.path.basename(p): p for p in list_shards(directory, split)}
    problems = [f"{os.path.join(directory, n)} is missing"
                for n in sorted(expected - set(present))]
    problems += [f"{present[n]} is not in {MANIFEST_FILE}"
                 for n in sorted(set(present) - expected)]
    for name in sorted(expected & set(present)):
      size = tf.io.gfile.stat(present[name]).length
      if size != recorded[name]:
        problems.append(f"TFRecord shard {present[name]} has {size} bytes, "
                        f"{MANIFEST_FILE} records {recorded[name]}")
    if problems:
      raise tf.errors.DataLossError(
          None, None, f"{problems[0]}: the data in {directory} was truncated "
          "or changed after it was written; regenerate or re-convert it")

