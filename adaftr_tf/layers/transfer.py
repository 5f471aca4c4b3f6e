"""AITM's adaptive information transfer (AIT) unit (Xi et al., KDD 2021).

The CVR tower receives information from the CTR tower: with `p = g(h_ctr)`
(the transferred CTR information) and `q = h_cvr`,
  w_u = softmax_u( <h2(u), h3(u)> / sqrt(d) ),  u in {p, q}
  z   = sum_u w_u * h1(u)
and the CVR tower's head reads its logit from `z` (`TaskTower.logit`).
"""

import math

import tensorflow as tf
import tf_keras

from adaftr_tf.layers.mlp import derive_seed
from adaftr_tf.layers.mlp import validate_positive_int
from adaftr_tf.layers.mlp import validate_seed


def _dense(units, seed, tag, activation=None):
  return tf_keras.layers.Dense(
      units, activation=activation, name=tag,
      kernel_initializer=tf_keras.initializers.GlorotUniform(
          seed=derive_seed(seed, tag)))


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class AttentionTransfer(tf_keras.layers.Layer):
  """The AIT unit.

  Call:
    h_ctr: [batch, d_ctr] CTR task representation.
    h_cvr: [batch, d] CVR task representation.

  Returns:
    (z [batch, d] the transferred CVR representation,
     weights [batch, 2] attention over (transferred CTR, own CVR)).
  """

  def __init__(self, dim, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.dim = validate_positive_int("dim", dim)
    self.seed = validate_seed(seed)
    self._transfer = _dense(self.dim, self.seed, "transfer", "relu")
    self._h1 = _dense(self.dim, self.seed, "value")
    self._h2 = _dense(self.dim, self.seed, "query")
    self._h3 = _dense(self.dim, self.seed, "key")

  def call(self, h_ctr, h_cvr):
    items = tf.stack([self._transfer(h_ctr), h_cvr], axis=1)  # [B, 2, d]
    scores = tf.reduce_sum(self._h2(items) * self._h3(items), axis=-1)
    weights = tf.nn.softmax(scores / math.sqrt(self.dim), axis=-1)  # [B, 2]
    z = tf.reduce_sum(weights[..., None] * self._h1(items), axis=1)
    return z, weights

  def get_config(self):
    config = super().get_config()
    config.update(dim=self.dim, seed=self.seed)
    return config
