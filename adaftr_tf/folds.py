"""Row folds for cross-fitting: a fixed fold per training row, from its
features alone, the same in every run, epoch, replica and input order.

A teacher trained with `train.folds=K, train.holdout_fold=k` leaves the rows
of fold k out of its training loss; a student reading K such teachers
(`loss.teacher_dir` listing them in fold order) takes each training row's
tau from the teacher that never trained on that row (tasks/alignment.py).
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

_BYTE_WEIGHTS = (1, 1 << 8, 1 << 16, 1 << 24)


def _columns(name: str, value: tf.Tensor) -> tf.Tensor:
  """A raw feature as int64 columns `[batch, n]` (floats by their bits,
  strings by a hash)."""
  if not isinstance(value, tf.Tensor):
    raise ValueError(f"row folds need dense features; {name} is a "
                     f"{type(value).__name__}")
  if value.dtype == tf.string:
    value = tf.strings.to_hash_bucket_fast(value, 1 << 62)
  elif value.dtype.is_floating:
    value = tf.bitcast(tf.cast(value, tf.float32), tf.int32)
  value = tf.cast(value, tf.int64)
  return tf.reshape(value, [tf.shape(value)[0], -1])


def row_fold(features: Mapping[str, tf.Tensor], folds: int) -> tf.Tensor:
  """The fold `[batch]` int32 in [0, folds) of each row: the farmhash
  fingerprint of every raw feature value (fields in sorted order), modulo
  `folds`. Not XLA-compilable (the config refuses jit_compile with folds).
  """
  if folds < 2:
    raise ValueError(f"row folds need folds >= 2, got {folds}")
  columns = tf.concat([_columns(name, features[name])
                       for name in sorted(features)], axis=1)
  fingerprint = tf.cast(tf.fingerprint(columns)[:, :4], tf.int64)
  key = tf.reduce_sum(fingerprint * tf.constant(_BYTE_WEIGHTS, tf.int64),
                      axis=1)
  return tf.cast(key % folds, tf.int32)
