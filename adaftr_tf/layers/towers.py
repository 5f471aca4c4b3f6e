"""Task towers and the contrastive projection head."""

import tensorflow as tf
import tf_keras

from adaftr_tf.layers.mlp import MLP
from adaftr_tf.layers.mlp import derive_seed
from adaftr_tf.layers.mlp import validate_positive_int
from adaftr_tf.layers.mlp import validate_rate
from adaftr_tf.layers.mlp import validate_seed
from adaftr_tf.layers.mlp import validate_units


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class TaskTower(tf_keras.layers.Layer):
  """Task-specific MLP with a scalar logit head.

  `hidden = MLP(units)(x)` is the task representation (`h_ctr` / `h_cvr`);
  `logit = Dense(1)(hidden)`.

  Call:
    x: [batch, in]. training: enables dropout / batch statistics.

  Returns:
    (logit [batch] float32, hidden [batch, units[-1]] in the compute dtype).
  """

  def __init__(self, units, dropout=0.0, use_batch_norm=False, seed=0,
               **kwargs):
    super().__init__(**kwargs)
    self.units = validate_units("units", units)
    self.dropout = validate_rate("dropout", dropout)
    self.use_batch_norm = bool(use_batch_norm)
    self.seed = validate_seed(seed)
    self._mlp = MLP(self.units, dropout=self.dropout,
                    use_batch_norm=self.use_batch_norm, seed=self.seed,
                    name="mlp")
    self._head = tf_keras.layers.Dense(
        1, kernel_initializer=tf_keras.initializers.GlorotUniform(
            seed=derive_seed(self.seed, "logit")), name="logit")

  def call(self, x, training=None):
    hidden = self.hidden(x, training=training)
    return self.logit(hidden), hidden

  def hidden(self, x, training=None):
    """The MLP alone: x [batch, in] -> task representation [batch, units[-1]]."""
    return self._mlp(x, training=training)

  def logit(self, hidden):
    """The head alone: hidden [batch, units[-1]] -> logit [batch] float32.

    AITM reads the CVR logit from its transferred representation through
    this same head.
    """
    return tf.cast(tf.squeeze(self._head(hidden), axis=-1), tf.float32)

  def get_config(self):
    config = super().get_config()
    config.update(units=list(self.units), dropout=self.dropout,
                  use_batch_norm=self.use_batch_norm, seed=self.seed)
    return config


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class ProjectionHead(tf_keras.layers.Layer):
  """Projects a task representation onto the unit sphere for InfoNCE.

  `z = l2_normalize(W2 relu(W1 h + b1) + b2)`, in float32 even under mixed
  precision: the similarities are divided by temperatures as small as ~1e-2,
  which would amplify float16 rounding.

  Call:
    h: [batch, d].

  Returns:
    [batch, output_dim] float32 rows of unit L2 norm.
  """

  def __init__(self, hidden_units, output_dim, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.hidden_units = validate_positive_int("hidden_units", hidden_units)
    self.output_dim = validate_positive_int("output_dim", output_dim)
    self.seed = validate_seed(seed)
    glorot = tf_keras.initializers.GlorotUniform
    self._hidden = tf_keras.layers.Dense(
        self.hidden_units, activation="relu",
        kernel_initializer=glorot(seed=derive_seed(self.seed, "hidden")),
        dtype="float32", name="hidden")
    self._output = tf_keras.layers.Dense(
        self.output_dim,
        kernel_initializer=glorot(seed=derive_seed(self.seed, "output")),
        dtype="float32", name="output")

  def call(self, h):
    z = self._output(self._hidden(tf.cast(h, tf.float32)))
    return tf.math.l2_normalize(z, axis=-1, epsilon=1e-12)

  def get_config(self):
    config = super().get_config()
    config.update(hidden_units=self.hidden_units, output_dim=self.output_dim,
                  seed=self.seed)
    return config
