"""Synthetic data in memory: the tiny preset's columns, batches and configs."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf import overrides
from adaftr_tf.config import SyntheticConfig
from adaftr_tf.experiments import methods
from pipelines.data import synthetic

# The paper reading's loss fields (InfoNCE trains the relatedness network,
# in-batch negatives) as overrides: what tests of that objective, and of
# the control temperatures that replace its network, set whatever the
# library's defaults.
PAPER_READING = [f"loss.{key}={value}"
                 for key, value in methods.PAPER_READING.items()]


# A small synthetic log (2 shards per split), for quick file-system tests.
SMALL_SYNTHETIC = SyntheticConfig(num_train=300, num_valid=120, num_test=80,
                                  num_categorical=3, num_numerical=5,
                                  vocab_size=50, num_shards=2, seed=3)


def in_memory_dataset(columns: Mapping[str, np.ndarray],
                      schema: F.FeatureSchema, batch_size: int, *,
                      training: bool, with_oracle: bool = False, seed: int = 0,
                      drop_remainder: bool | None = None) -> tf.data.Dataset:
  """Batches arrays (`synthetic.generate_split`) like `reader.make_dataset`.

  Rows are shuffled by index (seeded, full-length, reshuffled every epoch) and
  gathered per batch, which avoids a per-row shuffle buffer of 80+ tensors.

  Args:
    columns: name -> [rows] array holding every schema feature, LABEL_KEYS
      and, with `with_oracle`, ORACLE_KEYS; other columns are ignored.
    schema, batch_size, training, with_oracle, seed, drop_remainder: as in
      `reader.make_dataset`.

  Returns:
    A dataset with exactly `reader.make_dataset`'s element_spec.

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

  def split(parsed):
    features, labels, oracle = schema.split_parsed(parsed)
    return (features, labels, oracle) if with_oracle else (features, labels)

  ds = tf.data.Dataset.range(rows)
  if training:
    ds = ds.shuffle(max(rows, 1), seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  ds = ds.map(lambda idx: split({k: tf.gather(t, idx)
                                 for k, t in tensors.items()}),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
  return ds.prefetch(tf.data.AUTOTUNE)


def concat_rows(dataset) -> dict[str, np.ndarray]:
  """Concatenates every batch of `(features, labels[, extra])` elements
  into name -> [rows] arrays (all the element's dicts)."""
  parts = {}
  for element in dataset:
    for part in element:
      for k, v in part.items():
        parts.setdefault(k, []).append(v.numpy())
  return {k: np.concatenate(v) for k, v in parts.items()}


def sorted_rows(rows: Mapping[str, np.ndarray], keys) -> np.ndarray:
  """The `keys` columns of `rows` as a [rows, len(keys)] float64 table
  sorted row-wise, for order-free comparison."""
  table = np.stack([rows[k].astype(np.float64) for k in keys], axis=1)
  return table[np.lexsort(table.T[::-1])]


def tiny_config(*items):
  """The `tiny` preset with `key=value` overrides."""
  return overrides.apply(experiments.get_preset("tiny"), list(items))


def synthetic_columns(config, rows=512, split="train"):
  """(columns, schema): `rows` synthetic rows of the config's data."""
  columns = synthetic.generate_split(config.data.synthetic, split, rows)
  schema = synthetic.synthetic_schema(config.data.synthetic)
  return columns, schema


def synthetic_batch(config, rows=256):
  """((features, labels), schema): one unshuffled batch of `rows` rows."""
  columns, schema = synthetic_columns(config, rows)
  dataset = in_memory_dataset(columns, schema, rows, training=False)
  return next(iter(dataset)), schema


def agreement_model(*items, rows=16):
  """(compiled model, one batch of `rows`) of the tiny preset under
  `loss.relatedness_signal=gradient_agreement` and the overrides `items`."""
  config = tiny_config("loss.relatedness_signal=gradient_agreement", *items)
  batch, schema = synthetic_batch(config, rows)
  model = models.compile_model(models.build_model(config, schema), config)
  return model, batch


INDEPENDENT_LABELS = ("income_50k", "never_married")


def independent_columns(config, rows=512, split="train"):
  """(columns, schema): synthetic rows relabelled as two independent tasks.

  The first label (`income_50k`) is the synthetic click; the second
  (`never_married`) is 1 for even ids of the first categorical field,
  flipped with probability 0.2 (learnable, and not implied by the first).
  """
  import dataclasses
  columns, schema = synthetic_columns(config, rows, split)
  rng = np.random.default_rng(len(split))
  ids = columns[schema.categorical[0].name]
  second = (ids % 2 == 0) ^ (rng.random(len(ids)) < 0.2)
  columns = dict(columns)
  columns[INDEPENDENT_LABELS[0]] = columns.pop(F.CLICK)
  columns[INDEPENDENT_LABELS[1]] = second.astype(np.int64)
  del columns[F.CONVERSION]
  schema = dataclasses.replace(schema, labels=INDEPENDENT_LABELS,
                               label_relation=F.INDEPENDENT)
  return columns, schema


def write_independent_dataset(config, directory: str, rows: int = 512) -> str:
  """A data directory (train/valid/test, schema.json, shards.json) of
  `independent_columns`, without oracle columns; returns `directory`."""
  from pipelines.data import records
  for split in ("train", "valid", "test"):
    columns, schema = independent_columns(config, rows, split)
    columns = {k: v for k, v in columns.items()
               if not k.startswith(F.ORACLE_PREFIX)}
    records.write_sharded(columns, directory, split, 1)
  schema.save(directory)
  records.write_manifest(directory)
  return directory
