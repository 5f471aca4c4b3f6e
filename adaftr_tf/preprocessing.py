"""In-graph preprocessing: raw feature values -> embedding rows and normalised floats.

`FeatureEncoder` is the first layer of every model, so a SavedModel carries its
vocabulary lookups, hashing and normalisation: clients send raw values.
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf
import tf_keras

from adaftr_tf import features as F


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class FeatureEncoder(tf_keras.layers.Layer):
  """Maps a dict of raw features to model-ready tensors.

  Args:
    schema: `FeatureSchema.to_dict()` (plain JSON, so `get_config` round-trips).

  Call:
    features: dict name -> raw `[batch]` tensor (int64 ids, float32 values).

  Returns:
    categorical: `[batch, n_categorical]` int32 embedding rows; unknown ids map
      to each field's OOV row (`vocab_size`).
    numerical: `[batch, n_numerical]` float32, `(x - mean) / std`.
  """

  def __init__(self, schema: Mapping[str, Any], **kwargs):
    super().__init__(**kwargs)
    self._schema_dict = dict(schema)
    self.schema = F.FeatureSchema.from_dict(schema)
    self._tables = {}
    for feature in self.schema.categorical:
      if feature.encoding == "vocabulary":
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.constant(feature.vocabulary, tf.int64),
            tf.range(feature.vocab_size, dtype=tf.int64))
        self._tables[feature.name] = tf.lookup.StaticHashTable(
            initializer, default_value=feature.oov_index)
    numerical = self.schema.numerical
    self._mean = tf.constant([f.mean for f in numerical], tf.float32)
    self._inv_std = tf.constant([1.0 / f.std for f in numerical], tf.float32)

  def _rows(self, feature: F.CategoricalFeature, raw: tf.Tensor) -> tf.Tensor:
    raw = tf.cast(raw, tf.int64)
    oov = tf.constant(feature.oov_index, tf.int64)
    if feature.encoding == "identity":
      known = (raw >= 0) & (raw < feature.vocab_size)
      return tf.where(known, raw, oov)
    if feature.encoding == "vocabulary":
      return self._tables[feature.name].lookup(raw)
    hashed = tf.strings.to_hash_bucket_fast(tf.strings.as_string(raw),
                                            feature.vocab_size)
    return tf.where(raw == feature.default, oov, hashed)

  def call(self, features: Mapping[str, tf.Tensor]):
    missing = [n for n in self.schema.feature_names if n not in features]
    if missing:
      raise ValueError(f"features missing from the model input: {missing}")
    batch = tf.shape(features[self.schema.feature_names[0]])[0]
    if self.schema.categorical:
      categorical = tf.stack(
          [self._rows(f, tf.reshape(features[f.name], [-1]))
           for f in self.schema.categorical], axis=1)
      categorical = tf.cast(categorical, tf.int32)
    else:
      categorical = tf.zeros([batch, 0], tf.int32)
    if self.schema.numerical:
      numerical = tf.stack(
          [tf.cast(tf.reshape(features[f.name], [-1]), tf.float32)
           for f in self.schema.numerical], axis=1)
      numerical = (numerical - self._mean) * self._inv_std
    else:
      numerical = tf.zeros([batch, 0], tf.float32)
    return categorical, numerical

  def get_config(self):
    return {**super().get_config(), "schema": self._schema_dict}
