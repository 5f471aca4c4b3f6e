"""tf.data readers: TFRecord shards -> batched model inputs.

The readers yield `(features, labels)`, or `(features, labels, extra)` with
`with_oracle` or `with_keys`, where
  features: name -> [batch] int64 (categorical) / float32 (numerical),
  labels:   LABEL_KEYS -> [batch] float32,
  extra:    ORACLE_KEYS -> [batch] float32 (synthetic data only) and the
            schema's row keys -> [batch] int64 (`with_keys`).
The batch dimension is static when remainders are dropped (training default).

Both record layouts (layout.py, recorded in the data directory) give the same
elements. Per-row records are batched, then parsed a batch at a time with
`parse_example`. Row blocks are decoded a window of blocks at a time into
whole columns (blocks.py), their rows permuted in-graph when training, then
cut into batches with `Dataset.rebatch`: no tf.data element per row.
"""

from __future__ import annotations

from adaftr_tf import features as F
import tensorflow as tf

from pipelines.data import blocks
from pipelines.data import layout as layout_lib
from pipelines.data import records


def _split(schema: F.FeatureSchema, third: bool):
  """Returns a fn: parsed dict -> the element tuple (with the extra columns
  as a third element when `third`)."""
  def split(parsed):
    features, labels, extra = schema.split_parsed(parsed)
    return (features, labels, extra) if third else (features, labels)
  return split


# Per-epoch shuffle seeds are `seed * EPOCH_SEED_STRIDE + epoch`: the order of
# an epoch is a function of (seed, epoch) alone, so a restarted process can
# rebuild any epoch and skip to the batch where its predecessor stopped.
EPOCH_SEED_STRIDE = 1_000_003


def _file_dataset(data_dir: str, split: str, training: bool, seed,
                  input_context: tf.distribute.InputContext | None,
                  shuffle_files: bool = True):
  """Sorted shard paths, sharded per input pipeline, shuffled when training
  (and `shuffle_files`)."""
  paths = records.list_shards(data_dir, split)
  files = tf.data.Dataset.from_tensor_slices(paths)
  if input_context is not None:
    pipelines = input_context.num_input_pipelines
    # Sharding by file with fewer files than pipelines would leave some
    # workers without data (they hang or see empty batches): refuse instead.
    if len(paths) < pipelines:
      raise ValueError(
          f"split {split!r} in {data_dir} has {len(paths)} files but "
          f"{pipelines} input pipelines; write at least {pipelines} shards")
    files = files.shard(pipelines, input_context.input_pipeline_id)
  if training and shuffle_files:
    files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
  return files


def _records(data_dir, split, training, seed, input_context, shuffle_buffer,
             shuffle_files=True):
  """Serialized records of this pipeline's files (shuffled if training)."""
  files = _file_dataset(data_dir, split, training, seed, input_context,
                        shuffle_files)
  # A fixed cycle_length (not AUTOTUNE, which follows the CPU count) and a
  # deterministic order keep runs reproducible and resumable.
  ds = files.interleave(tf.data.TFRecordDataset, cycle_length=4,
                        num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  return ds


def _spec(schema: F.FeatureSchema, with_oracle: bool, with_keys: bool):
  """(per-row parse spec, fn: parsed dict -> element tuple)."""
  with_keys = with_keys and bool(schema.keys)
  spec = schema.parse_spec(with_oracle=with_oracle, with_keys=with_keys)
  return spec, _split(schema, with_oracle or with_keys)


def _parsed(ds, schema: F.FeatureSchema, with_oracle: bool,
            with_keys: bool = False):
  """Batches of serialized records -> parsed element tuples, prefetched."""
  spec, split_fn = _spec(schema, with_oracle, with_keys)
  ds = ds.map(lambda batch: split_fn(tf.io.parse_example(batch, spec)),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def _mixed(columns: dict, window_seed: tf.Tensor) -> dict:
  """Permutes the rows of decoded columns (a stateless shuffle: the same
  `window_seed` [2] int64 gives the same order on every run)."""
  rows = tf.shape(columns[next(iter(columns))], out_type=tf.int64)[0]
  order = tf.random.experimental.stateless_shuffle(tf.range(rows),
                                                   seed=window_seed)
  return {k: tf.gather(v, order) for k, v in columns.items()}


def _first_rows(windows: tf.data.Dataset, rows: int) -> tf.data.Dataset:
  """The windows (of serialised blocks) up to the one that holds the
  `rows`-th row: what follows would be decoded ahead, then dropped."""
  def add(total, window):
    return total + blocks.rows_in(window), (total, window)
  return windows.scan(tf.constant(0, tf.int64), add).take_while(
      lambda before, _: before < rows).map(lambda _, window: window)


def _block_rows(data_dir, split, training, seed, input_context,
                shuffle_buffer, block_rows, spec, split_fn, repeat=False,
                max_rows=None, shuffle_files=True):
  """This pipeline's blocks decoded a window at a time, as element tuples.

  Files (shuffled when training) -> interleaved blocks -> [training: shuffle
  blocks, a buffer of `blocks.buffer_blocks`] -> [repeat] -> windows of
  `blocks.window_blocks` blocks -> decode (`spec`: the per-row parse spec) ->
  [training: permute the window's rows] -> `split_fn`. The permutations'
  seeds are a random stream seeded by `seed`
  (`Dataset.random`, drawn anew for each iteration like the shuffles): the
  k-th window of the first iteration of a dataset built with the same seed
  is always permuted alike.

  `max_rows`: stop after the window that holds that many rows.

  Returns:
    A dataset of `(features, labels[, extra])` whose tensors hold a
    window's rows, `[rows]` (ragged `[rows, None]` for variable-length
    fields): `rebatch` cuts them into batches.
  """
  window = blocks.window_blocks(shuffle_buffer, block_rows)
  ds = _records(data_dir, split, training, seed, input_context,
                shuffle_buffer=blocks.buffer_blocks(shuffle_buffer, block_rows),
                shuffle_files=shuffle_files)
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(window)
  if max_rows is not None:
    ds = _first_rows(ds, max_rows)
  if not training:
    return ds.map(lambda serialized: split_fn(blocks.decode(serialized, spec)),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  window_seeds = tf.data.Dataset.random(
      seed=seed, rerandomize_each_iteration=True).batch(2)

  @tf.autograph.experimental.do_not_convert
  def decode(window_seed, serialized):
    return split_fn(_mixed(blocks.decode(serialized, spec), window_seed))

  # One window decoded at a time: AUTOTUNE kept several ~100k-row windows in
  # flight (peak memory above the per-row layout's) and was no faster.
  return tf.data.Dataset.zip((window_seeds, ds)).map(decode)


def per_replica_batch(batch_size: int, input_context) -> int:
  """The batch one replica trains on: the global `batch_size` divided by
  the replicas in sync (all of it without an `input_context`)."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if input_context is None:
    return batch_size
  return input_context.get_per_replica_batch_size(batch_size)


def batches_per_step(input_context: tf.distribute.InputContext | None) -> int:
  """Elements one pipeline yields per global step (its local replicas)."""
  if input_context is None:
    return 1
  return max(1, input_context.num_replicas_in_sync //
             input_context.num_input_pipelines)


def make_dataset(data_dir: str, split: str, schema: F.FeatureSchema,
                 batch_size: int, *, training: bool,
                 input_context: tf.distribute.InputContext | None = None,
                 with_oracle: bool = False, shuffle_buffer: int = 100_000,
                 seed: int | None = 0, drop_remainder: bool | None = None,
                 repeat: bool = False, skip_batches: int = 0,
                 with_keys: bool = False,
                 shuffle_files: bool = True) -> tf.data.Dataset:
  """Reads the `{split}-*-of-*.tfrecord` shards of a data directory.

  Pipeline, per-row records: sorted files -> shard by input pipeline ->
  shuffle files (train) -> interleave records -> shuffle records (train) ->
  [repeat] -> batch -> [skip] -> `parse_example` on the whole batch ->
  split -> prefetch. Row blocks: the same up to the interleave, then
  windows of blocks decoded and (train) permuted (`_block_rows`) ->
  `rebatch` -> [skip] -> split -> prefetch; evaluation keeps the blocks'
  order and every row once.

  Args:
    data_dir: directory holding the shards.
    split: split name, e.g. "train".
    schema: the dataset's feature schema (parse spec, defaults).
    batch_size: global batch size; divided by the number of replicas when an
      `input_context` is given.
    training: shuffle (seeded) and drop remainders; otherwise every row is
      read exactly once. The order is deterministic for a given seed.
    input_context: from `distribute_datasets_from_function`; shards files.
    with_oracle: also parse ORACLE_KEYS and yield them in a third element.
    with_keys: also parse the schema's row keys (if it has any) into the
      third element (evaluation only: Keras `fit` would take a third element
      for sample weights).
    shuffle_buffer: records in the shuffle buffer (training only); row
      blocks: rows in the block shuffle buffer, twice the rows of a
      window of blocks (`blocks.window_blocks`).
    seed: seed of the file and record shuffles (None: a random order per
      iterator, e.g. for asynchronous parameter-server workers).
    drop_remainder: defaults to `training`.
    repeat: repeat indefinitely (before batching).
    skip_batches: batches dropped after batching (per-row records: before
      parsing, cheap; row blocks: the skipped rows are decoded).
    shuffle_files: training shuffles the file list (False: the files stay
      in sorted order; a tf.data service splits them, service.py).

  Returns:
    A dataset of `(features, labels)` or `(features, labels, extra)`.

  Raises:
    FileNotFoundError: no shard of `split` in `data_dir`.
    ValueError: fewer files than input pipelines, or a bad batch size.
  """
  batch_size = per_replica_batch(batch_size, input_context)
  drop_remainder = training if drop_remainder is None else drop_remainder
  layout = layout_lib.load(data_dir)
  if layout.is_blocks:
    ds = _block_rows(data_dir, split, training, seed, input_context,
                     shuffle_buffer, layout.block_rows,
                     *_spec(schema, with_oracle, with_keys), repeat,
                     shuffle_files=shuffle_files)
    ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    if skip_batches:
      ds = ds.skip(skip_batches)
    return ds.prefetch(tf.data.AUTOTUNE)
  ds = _records(data_dir, split, training, seed, input_context,
                shuffle_buffer, shuffle_files)
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  if skip_batches:
    ds = ds.skip(skip_batches)
  return _parsed(ds, schema, with_oracle, with_keys)


def make_epochs_dataset(data_dir: str, split: str, schema: F.FeatureSchema,
                        batch_size: int, *, steps_per_epoch: int,
                        first_epoch: int, end_epoch: int, skip_steps: int = 0,
                        seed: int = 0, shuffle_buffer: int = 100_000,
                        input_context: tf.distribute.InputContext | None = None,
                        with_oracle: bool = False) -> tf.data.Dataset:
  """Training batches of epochs `[first_epoch, end_epoch)`, resumable exactly.

  Every epoch is an independent pass whose order depends only on
  `(seed, epoch)` and this input pipeline: its files and records are shuffled
  with seed `seed * EPOCH_SEED_STRIDE + epoch` (row blocks: then the rows
  of each window of blocks are permuted, from a random stream of the same
  seed), repeated if the epoch needs more rows than one pass holds,
  batched with remainders dropped and cut to exactly `steps_per_epoch`
  global steps. The first `skip_steps` steps of `first_epoch` are skipped
  (already trained before a restart): per-row records after batching and
  before parsing; row blocks after decoding (the skipped rows' blocks are
  decoded again, so a resume reads up to one epoch of blocks before its
  first batch).

  Args:
    data_dir, split, schema, batch_size, shuffle_buffer, input_context,
      with_oracle: as in `make_dataset` (`batch_size` is the global batch).
    steps_per_epoch: global steps per epoch.
    first_epoch, end_epoch: the epochs to yield, 0-based, end excluded.
    skip_steps: global steps of `first_epoch` already done.
    seed: base shuffle seed.

  Returns:
    A dataset of `(features, labels[, oracle])` yielding, per pipeline, exactly
    `(steps_per_epoch * (end_epoch - first_epoch) - skip_steps) *
    batches_per_step(input_context)` per-replica batches.

  Raises:
    ValueError: an empty epoch range or `skip_steps` outside an epoch.
  """
  local_batch = per_replica_batch(batch_size, input_context)
  per_step = batches_per_step(input_context)
  layout = layout_lib.load(data_dir)

  def one_epoch(epoch: int) -> tf.data.Dataset:
    # Python-int seeds: a tensor seed (e.g. from a flat_map over epoch
    # numbers) breaks tf.data's seed logic when the global seed is 0.
    epoch_seed = seed * EPOCH_SEED_STRIDE + epoch
    if layout.is_blocks:
      ds = _block_rows(data_dir, split, True, epoch_seed, input_context,
                       shuffle_buffer, layout.block_rows,
                       *_spec(schema, with_oracle, False), repeat=True,
                       max_rows=steps_per_epoch * per_step * local_batch)
      return ds.rebatch(local_batch, drop_remainder=True)
    ds = _records(data_dir, split, True, epoch_seed, input_context,
                  shuffle_buffer).repeat()
    return ds.batch(local_batch, drop_remainder=True)

  ds = chain_epochs(one_epoch, steps_per_epoch=steps_per_epoch,
                    first_epoch=first_epoch, end_epoch=end_epoch,
                    skip_steps=skip_steps, per_step=per_step)
  if layout.is_blocks:
    return ds.prefetch(tf.data.AUTOTUNE)
  return _parsed(ds, schema, with_oracle=with_oracle)


def chain_epochs(epoch_batches, *, steps_per_epoch: int, first_epoch: int,
                 end_epoch: int, skip_steps: int, per_step: int
                 ) -> tf.data.Dataset:
  """Epochs `[first_epoch, end_epoch)`, each `epoch_batches(epoch)` (at least
  `steps_per_epoch * per_step` batches, e.g. repeated) cut to exactly that
  many, `skip_steps * per_step` of the first dropped, concatenated; of
  unknown cardinality. Arguments as in `make_epochs_dataset`; `per_step`:
  `batches_per_step`. Raises ValueError: an empty epoch range or
  `skip_steps` outside an epoch."""
  if not 0 <= first_epoch < end_epoch:
    raise ValueError(f"epochs [{first_epoch}, {end_epoch}) are empty")
  if not 0 <= skip_steps < steps_per_epoch:
    raise ValueError(f"skip_steps={skip_steps} must lie in [0, "
                     f"steps_per_epoch={steps_per_epoch})")

  def one_epoch(epoch: int) -> tf.data.Dataset:
    ds = epoch_batches(epoch).take(steps_per_epoch * per_step)
    if epoch == first_epoch and skip_steps:
      ds = ds.skip(skip_steps * per_step)
    return ds

  ds = one_epoch(first_epoch)
  for epoch in range(first_epoch + 1, end_epoch):
    ds = ds.concatenate(one_epoch(epoch))
  # Keras `fit` makes a second iterator at the first epoch when the
  # cardinality equals steps_per_epoch (a one-epoch segment after a resume),
  # and a second iteration of a reshuffling dataset yields another order.
  # An unknown cardinality keeps Keras on the one iterator (same batches as
  # an uninterrupted run).
  return ds.filter(lambda *_: True)
