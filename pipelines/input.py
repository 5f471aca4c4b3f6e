"""tf.data readers: TFRecord shards or in-memory arrays -> batched model inputs.

Both readers yield identical elements (same `element_spec`):
`(features, labels)`, or `(features, labels, oracle)` with `with_oracle`, where
  features: name -> [batch] int64 (categorical) / float32 (numerical),
  labels:   LABEL_KEYS -> [batch] float32,
  oracle:   ORACLE_KEYS -> [batch] float32 (synthetic data only).
The batch dimension is static when remainders are dropped (training default).
"""

from __future__ import annotations

from typing import Mapping

from adaftr_tf import features as F
import numpy as np
import tensorflow as tf

from pipelines import records


def _split(schema: F.FeatureSchema, with_oracle: bool):
  """Returns a fn: parsed dict -> the element tuple."""
  def split(parsed):
    features, labels, oracle = schema.split_parsed(parsed)
    return (features, labels, oracle) if with_oracle else (features, labels)
  return split


def _file_dataset(data_dir: str, split: str, training: bool, seed: int,
                  input_context: tf.distribute.InputContext | None):
  """Sorted shard paths, sharded per input pipeline, shuffled when training."""
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
  if training:
    files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
  return files


def make_dataset(data_dir: str, split: str, schema: F.FeatureSchema,
                 batch_size: int, *, training: bool,
                 input_context: tf.distribute.InputContext | None = None,
                 with_oracle: bool = False, shuffle_buffer: int = 100_000,
                 seed: int = 0, drop_remainder: bool | None = None,
                 repeat: bool = False) -> tf.data.Dataset:
  """Reads `{split}-*-of-*.tfrecord` shards of `tf.train.Example`s.

  Pipeline: sorted files -> shard by input pipeline -> shuffle files (train)
  -> interleave records -> shuffle records (train) -> [repeat] -> batch ->
  `parse_example` on the whole batch -> split -> prefetch.

  Args:
    data_dir: directory holding the shards.
    split: split name, e.g. "train".
    schema: the dataset's feature schema (parse spec, defaults).
    batch_size: global batch size; divided by the number of replicas when an
      `input_context` is given.
    training: shuffle (seeded) and drop remainders; otherwise the order is
      deterministic and every row is read exactly once.
    input_context: from `distribute_datasets_from_function`; shards files.
    with_oracle: also parse ORACLE_KEYS and yield them as a third element.
    shuffle_buffer: records in the shuffle buffer (training only).
    seed: seed of the file and record shuffles.
    drop_remainder: defaults to `training`.
    repeat: repeat indefinitely (before batching).

  Returns:
    A dataset of `(features, labels)` or `(features, labels, oracle)`.

  Raises:
    FileNotFoundError: no shard of `split` in `data_dir`.
    ValueError: fewer files than input pipelines, or a bad batch size.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  drop_remainder = training if drop_remainder is None else drop_remainder
  if input_context is not None:
    batch_size = input_context.get_per_replica_batch_size(batch_size)
  files = _file_dataset(data_dir, split, training, seed, input_context)
  # A fixed cycle_length (not AUTOTUNE, which follows the CPU count) keeps the
  # evaluation order identical on every machine.
  ds = files.interleave(tf.data.TFRecordDataset, cycle_length=4,
                        num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=not training)
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  spec = schema.parse_spec(with_oracle=with_oracle)
  split_fn = _split(schema, with_oracle)
  ds = ds.map(lambda batch: split_fn(tf.io.parse_example(batch, spec)),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
  return ds.prefetch(tf.data.AUTOTUNE)


def in_memory_dataset(columns: Mapping[str, np.ndarray],
                      schema: F.FeatureSchema, batch_size: int, *,
                      training: bool, with_oracle: bool = False, seed: int = 0,
                      drop_remainder: bool | None = None) -> tf.data.Dataset:
  """Batches arrays (e.g. `synthetic.generate_split`) like `make_dataset`.

  Rows are shuffled by index (seeded, full-length, reshuffled every epoch) and
  gathered per batch, which avoids a per-row shuffle buffer of 80+ tensors.

  Args:
    columns: name -> [rows] array holding every schema feature, LABEL_KEYS
      and, with `with_oracle`, ORACLE_KEYS; other columns are ignored.
    schema, batch_size, training, with_oracle, seed, drop_remainder: as in
      `make_dataset`.

  Returns:
    A dataset with exactly `make_dataset`'s element_spec.

  Raises:
    ValueError: a needed column is missing or the lengths differ.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  drop_remainder = training if drop_remainder is None else drop_remainder
  spec = schema.parse_spec(with_oracle=with_oracle)
  missing = [k for k in spec if k not in columns]
  if missing:
    raise ValueError(f"in_memory_dataset: columns {missing} are missing; "
                     f"available: {sorted(columns)}")
  lengths = {k: len(columns[k]) for k in spec}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"in_memory_dataset: column lengths differ: {lengths}")
  rows = next(iter(lengths.values()))
  tensors = {k: tf.constant(np.asarray(columns[k]), dtype=s.dtype)
             for k, s in spec.items()}
  ds = tf.data.Dataset.range(rows)
  if training:
    ds = ds.shuffle(max(rows, 1), seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  split_fn = _split(schema, with_oracle)
  ds = ds.map(lambda idx: split_fn({k: tf.gather(t, idx)
                                    for k, t in tensors.items()}),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
  return ds.prefetch(tf.data.AUTOTUNE)
