"""Row-block records: one `tf.train.Example` holds a block of rows, column by
column (the training layout; `layout.py` says which layout a folder holds).

A block of n rows is one Example whose features are the columns as packed
lists:
  * `block/rows`: int64 [1], n (the last block of a file may be partial);
  * a single-valued int column (ids, labels, row keys): int64_list [n];
  * a float column (numericals, oracle columns): float_list [n];
  * a variable-length int column (`records.RaggedColumn`, e.g. Ali-CCP's
    behaviour lists): `{name}` int64_list [nnz] (the rows' ids
    concatenated) and `{name}/lengths` int64_list [n] (ids per row, 0 for an
    empty list).
Decoding k blocks is one `tf.io.parse_example` with `RaggedFeature`s whose
flat values are whole columns: no proto is parsed per row. Keys with a `/`
cannot clash with feature names (identifiers, for the serving signature).

Writing builds each block with plain protobuf (blocks are few: 4,096 rows by
default), several times faster than the per-row batch writer.
"""

from __future__ import annotations

from typing import Mapping

import adaftr_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tensorflow as tf

from pipelines.data import records

ROWS_KEY = "block/rows"
LENGTHS_SUFFIX = "/lengths"
DEFAULT_BLOCK_ROWS = 4096


def _check_names(columns: Mapping) -> None:
  for name in columns:
    if name == ROWS_KEY or name.endswith(LENGTHS_SUFFIX):
      raise ValueError(f"column {name!r} clashes with the row-block keys "
                       f"({ROWS_KEY!r}, '*{LENGTHS_SUFFIX}')")


def encode_block(columns: Mapping, kinds, start: int, stop: int) -> bytes:
  """Rows [start, stop) of `columns` as one serialised block Example.

  Args:
    columns: name -> [rows] array or `RaggedColumn` (`records.column_kinds`).
    kinds: `records.column_kinds(columns)`.
    start, stop: the block's rows.
  """
  int_names, float_names, ragged_names, _ = kinds
  example = tf.train.Example()
  feature = example.features.feature
  feature[ROWS_KEY].int64_list.value.append(stop - start)
  for name in int_names:
    feature[name].int64_list.value.extend(
        np.asarray(columns[name][start:stop], np.int64).tolist())
  for name in float_names:
    feature[name].float_list.value.extend(
        np.asarray(columns[name][start:stop], np.float32).tolist())
  for name in ragged_names:
    piece = columns[name].rows(start, stop)
    feature[name].int64_list.value.extend(
        np.asarray(piece.values, np.int64).tolist())
    feature[name + LENGTHS_SUFFIX].int64_list.value.extend(
        piece.lengths.tolist())
  return example.SerializeToString()


def _write(columns: Mapping, kinds, path: str, start: int, stop: int,
           block_rows: int) -> None:
  with tf.io.TFRecordWriter(path) as writer:
    for first in range(start, stop, block_rows):
      writer.write(encode_block(columns, kinds, first,
                                min(first + block_rows, stop)))


def write_blocks(columns: Mapping, path: str,
                 block_rows: int = DEFAULT_BLOCK_ROWS) -> int:
  """Writes one TFRecord file of row blocks (zero rows: an empty file).

  Args:
    columns: as for `records.write_examples` (integer/bool -> int64, float ->
      float32, `RaggedColumn` -> variable-length int64), of equal length.
    path: output file; its directory must exist.
    block_rows: rows per block (the last block may hold fewer).

  Returns:
    The number of rows written.

  Raises:
    ValueError: naming the column (see `records.column_kinds`), or a
      column name that clashes with the block keys, or block_rows < 1.
  """
  if block_rows < 1:
    raise ValueError(f"block_rows must be >= 1, got {block_rows}")
  _check_names(columns)
  kinds = records.column_kinds(columns)
  _write(columns, kinds, path, 0, kinds[3], block_rows)
  return kinds[3]


def write_sharded(columns: Mapping, directory: str, split: str,
                  num_shards: int,
                  block_rows: int = DEFAULT_BLOCK_ROWS) -> list[str]:
  """`records.write_sharded` in row blocks: the same contiguous shards."""
  if block_rows < 1:
    raise ValueError(f"block_rows must be >= 1, got {block_rows}")
  _check_names(columns)
  kinds = records.column_kinds(columns)
  plan = records.shard_plan(directory, split, kinds[3], num_shards)
  for path, start, stop in plan:
    _write(columns, kinds, path, start, stop, block_rows)
  return [path for path, _, _ in plan]


def buffer_blocks(shuffle_buffer: int, block_rows: int) -> int:
  """Serialised blocks in the training block shuffle buffer: ~
  `shuffle_buffer` rows, at least 2."""
  return max(2, -(-shuffle_buffer // block_rows))


def window_blocks(shuffle_buffer: int, block_rows: int) -> int:
  """Blocks decoded (and, training, mixed) at once: ~`shuffle_buffer / 2`
  rows, at least 2 so that no batch comes from one block alone.

  What is mixed: a window's blocks come out of the block shuffle buffer
  (`buffer_blocks`), so the blocks whose rows meet in a batch span at least
  `shuffle_buffer` rows of the stream, as whole-buffer windows did; within
  a window every row goes to a uniformly random place, so a batch draws
  from ~`shuffle_buffer / 2` rows (demo: 13 blocks of 4,096) rather than
  ~all. In exchange the decoded window, its permuted copy and the decode's
  scratch are halved: demo windows of 25 blocks peaked 50-140 MiB higher
  (VmHWM), above the per-row layout's buffer of serialised Examples.
  """
  return max(2, -(-shuffle_buffer // (2 * block_rows)))


def block_spec(row_spec: Mapping) -> dict:
  """The parse spec of blocks holding the columns of a per-row parse spec.

  Args:
    row_spec: name -> `FixedLenFeature([])` or `RaggedFeature` (a variable
      length int column), as `FeatureSchema.parse_spec` gives.

  Returns:
    name -> `RaggedFeature`: each parses to `[blocks, None]`.
  """
  def ragged(dtype):
    return tf.io.RaggedFeature(dtype, row_splits_dtype=tf.int64)
  spec = {ROWS_KEY: ragged(tf.int64)}
  for name, feature in row_spec.items():
    spec[name] = ragged(feature.dtype)
    if isinstance(feature, tf.io.RaggedFeature):
      spec[name + LENGTHS_SUFFIX] = ragged(tf.int64)
  return spec


@tf.autograph.experimental.do_not_convert
def decode(serialized: tf.Tensor, row_spec: Mapping) -> dict:
  """Decodes k blocks into whole columns, rows in block order.

  Args:
    serialized: [k] serialised block Examples.
    row_spec: the per-row parse spec of the wanted columns (see
      `block_spec`).

  Returns:
    name -> [rows] int64/float32 (rows: the k blocks' rows), or a ragged
    `[rows, None]` int64 (int64 row splits) for a variable-length column:
    what `tf.io.parse_example(rows, row_spec)` gives for the same rows.

  Raises:
    tf.errors.InvalidArgumentError (when run): a record without a row
      count (not a block), or a column with another number of rows than its
      block's (named).
  """
  parsed = tf.io.parse_example(serialized, block_spec(row_spec))
  counts = parsed[ROWS_KEY]
  # (what must hold, [k] actual, [k] expected), checked by one assertion:
  # one per column costs ~10 ms of tracing each.
  checks = [(f"one {ROWS_KEY} per record (is this a row-block file?)",
             counts.row_lengths(), tf.ones_like(counts.row_lengths()))]
  counts = tf.reduce_sum(counts, axis=1)   # [k]; 0 where it is missing
  columns = {}
  for name, feature in row_spec.items():
    values = parsed[name]
    if isinstance(feature, tf.io.RaggedFeature):
      lengths = parsed[name + LENGTHS_SUFFIX]
      checks.append((f"{name}{LENGTHS_SUFFIX} has a length per row",
                     lengths.row_lengths(), counts))
      checks.append((f"{name} holds the ids its lengths count",
                     tf.reduce_sum(lengths, axis=1), values.row_lengths()))
      columns[name] = tf.RaggedTensor.from_row_lengths(
          values.flat_values, lengths.flat_values, validate=False)
    else:
      checks.append((f"{name} has one value per row", values.row_lengths(),
                     counts))
      columns[name] = values.flat_values
  wrong = tf.stack([tf.reduce_any(tf.not_equal(actual, expected))
                    for _, actual, expected in checks])
  check = tf.debugging.Assert(
      tf.logical_not(tf.reduce_any(wrong)),
      ["row-block record: this must hold but does not:",
       tf.boolean_mask(tf.constant([what for what, _, _ in checks]), wrong)],
      summarize=len(checks))
  with tf.control_dependencies([check]):
    return tf.nest.map_structure(tf.identity, columns)


def to_examples(serialized: bytes, limit: int | None = None) -> list[bytes]:
  """One block record -> per-row serialised `tf.train.Example`s of its first
  `limit` rows (all: None), encoded by the per-row writer
  (`records.serialize_examples`)."""
  block = tf.train.Example.FromString(serialized).features.feature
  rows = block[ROWS_KEY].int64_list.value[0]
  rows = rows if limit is None else min(rows, limit)
  columns = {}
  for name, feature in block.items():
    if name == ROWS_KEY or name.endswith(LENGTHS_SUFFIX):
      continue
    if feature.WhichOneof("kind") == "float_list":
      values = np.asarray(feature.float_list.value, np.float32)
    else:
      values = np.asarray(feature.int64_list.value, np.int64)
    if name + LENGTHS_SUFFIX in block:
      columns[name] = records.RaggedColumn.from_lengths(
          values, block[name + LENGTHS_SUFFIX].int64_list.value).rows(0, rows)
    else:
      columns[name] = values[:rows]
  return records.serialize_examples(columns)


def rows_in(serialized: tf.Tensor) -> tf.Tensor:
  """[] int64: the rows of [k] serialised blocks (parses only the counts)."""
  spec = {ROWS_KEY: tf.io.FixedLenFeature([], tf.int64)}
  return tf.reduce_sum(tf.io.parse_example(serialized, spec)[ROWS_KEY])


def count_rows(paths) -> int:
  """Rows in block files."""
  total = tf.data.TFRecordDataset(paths).batch(256).map(rows_in)
  return int(total.reduce(tf.constant(0, tf.int64), lambda n, x: n + x))
