"""In-graph preprocessing: raw feature values -> embedding rows and normalised floats.

`FeatureEncoder` is the first layer of every model, so a SavedModel carries its
vocabulary lookups, hashing and normalisation: clients send raw values.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf
import tf_keras

from adaftr_tf import choices
from adaftr_tf import features as F
from adaftr_tf import xla

# The metric counting replaced non-finite numerical values (policy `replace`).
NON_FINITE_METRIC = "non_finite_replaced"


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class FeatureEncoder(tf_keras.layers.Layer):
  """Maps a dict of raw features to model-ready tensors.

  Args:
    schema: `FeatureSchema.to_dict()` (plain JSON, so `get_config` round-trips).
    non_finite: what a NaN or +-Inf numerical value does (one of
      `choices.NonFinitePolicy`): `error` fails the call with an
      InvalidArgumentError naming the field and the first bad row of the
      batch; `replace` uses the field's schema `default` (the value of a
      missing feature) and adds the number of replaced values to the
      `non_finite_replaced` metric (a Sum: per epoch in the training logs;
      calls with `training=False`, e.g. serving, replace without counting).
      XLA drops assertions: under `train.jit_compile` the `error` check does
      not run, and a non-finite value reaches the loss, where the training
      job's non-finite-loss guard stops the run.

  Call:
    features: dict name -> raw `[batch]` tensor (int64 ids, float32 values).
      A multivalent field takes a ragged `[batch, None]` tensor (as parsed), a
      `tf.SparseTensor`, a dense `[batch, n]` tensor right-padded with the
      field's `default` (serving), or `[batch]` (one id per row).

  Returns:
    categorical: `[batch, n_categorical]` int32 embedding rows; unknown ids map
      to each field's OOV row (`vocab_size`). When the schema has a
      multivalent field: a `tf.RaggedTensor` `[batch, n_categorical, None]`
      int32 instead (single-valued fields hold one row each; an empty list
      holds the OOV row), which `FieldEmbedding` pools.
    numerical: `[batch, n_numerical]` float32, `(x - mean) / std`.
  """

  def __init__(self, schema: Mapping[str, Any], non_finite: str = "error",
               **kwargs):
    super().__init__(**kwargs)
    self.non_finite = choices.check("non_finite", non_finite,
                                    choices.NonFinitePolicy)
    self._schema_dict = dict(schema)
    self.schema = F.FeatureSchema.from_dict(schema)
    if non_finite == "replace":
      self.replaced = tf_keras.metrics.Sum(name=NON_FINITE_METRIC)
    # Vocabulary lookup by binary search over the sorted raw ids (XLA
    # compiles it, adaftr_tf/xla.py; a hash table would not): field ->
    # (sorted ids, their rows).
    self._vocabularies = {}
    for feature in self.schema.categorical:
      if feature.encoding == "vocabulary":
        ids = np.asarray(feature.vocabulary, np.int64)
        order = np.argsort(ids, kind="stable")
        self._vocabularies[feature.name] = (tf.constant(ids[order]),
                                            tf.constant(order, tf.int64))
    numerical = self.schema.numerical
    self._mean = tf.constant([f.mean for f in numerical], tf.float32)
    self._inv_std = tf.constant([1.0 / f.std for f in numerical], tf.float32)
    self._defaults = tf.constant([f.default for f in numerical], tf.float32)
    self._numerical_names = tf.constant([f.name for f in numerical],
                                        tf.string)

  def _rows(self, feature: F.CategoricalFeature, raw: tf.Tensor) -> tf.Tensor:
    raw = tf.cast(raw, tf.int64)
    oov = tf.constant(feature.oov_index, tf.int64)
    if feature.encoding == "identity":
      known = (raw >= 0) & (raw < feature.vocab_size)
      return tf.where(known, raw, oov)
    if feature.encoding == "vocabulary":
      ids, rows = self._vocabularies[feature.name]
      index = tf.minimum(xla.searchsorted(ids, raw), feature.vocab_size - 1)
      return tf.where(tf.gather(ids, index) == raw, tf.gather(rows, index),
                      oov)
    hashed = tf.strings.to_hash_bucket_fast(tf.strings.as_string(raw),
                                            feature.vocab_size)
    return tf.where(raw == feature.default, oov, hashed)

  def _ragged_rows(self, feature: F.CategoricalFeature, raw) -> tf.RaggedTensor:
    """Multivalent raw ids -> ragged `[batch, None]` int64 rows (may be empty)."""
    if isinstance(raw, tf.SparseTensor):
      raw = tf.RaggedTensor.from_sparse(raw)
    elif not isinstance(raw, tf.RaggedTensor):
      raw = tf.convert_to_tensor(raw)
      if raw.shape.rank == 1:
        raw = raw[:, None]
      raw = tf.RaggedTensor.from_tensor(
          raw, padding=tf.cast(feature.default, raw.dtype))
    raw = raw.with_row_splits_dtype(tf.int64)
    return raw.with_flat_values(self._rows(feature, raw.flat_values))

  @tf.autograph.experimental.do_not_convert
  def _categorical_ragged(self, features) -> tf.RaggedTensor:
    """`[batch, n_categorical, None]` int32 rows when some field is multivalent.

    Built with one permutation rather than `tf.stack` of ragged tensors (whose
    graph is ~100x larger): every id gets its example-major position
    `start[b, f] + rank in its list`; an empty list gets the OOV row.
    """
    fields = self.schema.categorical
    parts = []  # per field: (ids [n_f], example of each id [n_f], lengths [B])
    for feature in fields:
      raw = features[feature.name]
      if feature.multivalent:
        rows = self._ragged_rows(feature, raw)
        lengths = rows.row_lengths()
        empty = tf.where(tf.equal(lengths, 0))[:, 0]
        ids = tf.concat([rows.values, tf.fill(
            tf.shape(empty), tf.constant(feature.oov_index, tf.int64))], 0)
        owner = tf.concat([rows.value_rowids(), empty], 0)
        rank = tf.concat([tf.range(tf.size(rows.values, out_type=tf.int64))
                          - tf.gather(rows.row_starts(), rows.value_rowids()),
                          tf.zeros_like(empty)], 0)
        parts.append((ids, owner, rank, tf.maximum(lengths, 1)))
      else:
        ids = self._rows(feature, tf.reshape(raw, [-1]))
        owner = tf.range(tf.size(ids, out_type=tf.int64))
        parts.append((ids, owner, tf.zeros_like(owner), tf.ones_like(owner)))
    lengths = tf.stack([p[3] for p in parts], axis=1)  # [B, F]
    flat_lengths = tf.reshape(lengths, [-1])
    starts = tf.reshape(tf.cumsum(flat_lengths, exclusive=True),
                        tf.shape(lengths))
    positions = tf.concat([tf.gather(starts[:, f], owner) + rank
                           for f, (_, owner, rank, _) in enumerate(parts)], 0)
    values = tf.gather(tf.concat([p[0] for p in parts], 0),
                       tf.math.invert_permutation(positions))
    lists = tf.RaggedTensor.from_row_lengths(tf.cast(values, tf.int32),
                                             flat_lengths, validate=False)
    return tf.RaggedTensor.from_uniform_row_length(lists, len(fields),
                                                   validate=False)

  def _finite(self, values: tf.Tensor, training) -> tf.Tensor:
    """`[batch, n_numerical]` float32 raw values after the non-finite policy
    (one check for the whole matrix, not one per field)."""
    finite = tf.math.is_finite(values)
    if self.non_finite == "replace":
      if training is not False:
        self.replaced.update_state(
            tf.reduce_sum(tf.cast(~finite, tf.float32)))
      return tf.where(finite, values, self._defaults)
    if xla.in_xla_context():
      # XLA drops assertions and cannot compile the message's string ops:
      # the documented behaviour is the loss guard's (class docstring).
      return values

    # The first bad (row, column): `tf.where` lists the bad cells (cheap
    # when there are none; an argmin over the whole matrix was ~5% of a
    # 512-record request); a sentinel keeps an all-finite batch well defined
    # (its message is never shown).
    first = tf.concat([tf.where(~finite), tf.zeros([1, 2], tf.int64)], 0)[0]
    row, column = first[0], first[1]
    padded = tf.concat([values, tf.zeros([1, tf.shape(values)[1]],
                                         values.dtype)], 0)
    message = tf.strings.join([
        "numerical feature ", tf.gather(self._numerical_names, column),
        " holds a non-finite value (NaN or Inf) at batch row ",
        tf.strings.as_string(row), ", value ",
        tf.strings.as_string(padded[row, column]),
        "; fix the data, or set data.non_finite_policy=replace to use the "
        "schema default ",
        tf.strings.as_string(tf.gather(self._defaults, column))])
    check = tf.debugging.Assert(tf.reduce_all(finite), [message])
    with tf.control_dependencies([check]):
      return tf.identity(values)

  def call(self, features: Mapping[str, tf.Tensor], training=None):
    missing = [n for n in self.schema.feature_names if n not in features]
    if missing:
      raise ValueError(f"features missing from the model input: {missing}")
    batch = _batch_size(features[self.schema.feature_names[0]])
    if self.schema.has_multivalent:
      categorical = self._categorical_ragged(features)
    elif self.schema.categorical:
      categorical = tf.stack(
          [self._rows(f, tf.reshape(features[f.name], [-1]))
           for f in self.schema.categorical], axis=1)
      categorical = tf.cast(categorical, tf.int32)
    else:
      categorical = tf.zeros([batch, 0], tf.int32)
    if self.schema.numerical:
      numerical = self._finite(tf.stack(
          [tf.cast(tf.reshape(features[f.name], [-1]), tf.float32)
           for f in self.schema.numerical], axis=1), training)
      numerical = (numerical - self._mean) * self._inv_std
    else:
      numerical = tf.zeros([batch, 0], tf.float32)
    return categorical, numerical

  def get_config(self):
    return {**super().get_config(), "schema": self._schema_dict,
            "non_finite": self.non_finite}


def _batch_size(value) -> tf.Tensor:
  """Rows of a dense, ragged or sparse input, as an int32 scalar."""
  if isinstance(value, tf.RaggedTensor):
    return tf.cast(value.nrows(), tf.int32)
  if isinstance(value, tf.SparseTensor):
    return tf.cast(value.dense_shape[0], tf.int32)
  return tf.shape(value)[0]
