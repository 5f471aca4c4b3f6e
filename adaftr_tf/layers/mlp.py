"""Multi-layer perceptron, plus the argument checks shared by the layers."""

import math
import zlib

import tensorflow as tf
import tf_keras

from adaftr_tf.layers import factored


def derive_seed(seed, *tags):
  """Derives a sub-component's seed from its parent's seed and a path of tags.

  Hashing (rather than `seed + i`) keeps siblings built with consecutive seeds
  (e.g. towers with `seed` and `seed + 1`) from sharing initial weights.

  Args:
    seed: the parent's int seed.
    *tags: ints/strings naming the sub-component, e.g. ("dense", 0).

  Returns:
    A deterministic int in [0, 2**31).
  """
  return zlib.crc32(repr((int(seed),) + tags).encode("utf-8")) & 0x7FFFFFFF


def validate_units(name, units, allow_empty=False):
  """Checks a tuple of layer widths and returns it as a tuple of ints.

  Args:
    name: argument name used in the error message.
    units: sequence of positive ints.
    allow_empty: whether `()` is accepted.

  Returns:
    The widths as a tuple of Python ints.

  Raises:
    ValueError: if `units` is not a sequence of positive ints (or is empty
      while `allow_empty` is False).
  """
  if isinstance(units, (int, str, bytes)) or not hasattr(units, "__iter__"):
    raise ValueError(f"{name} must be a tuple of positive ints, got {units!r}")
  units = tuple(units)
  if not units and not allow_empty:
    raise ValueError(f"{name} must be a non-empty tuple of positive ints, "
                     f"got {units!r}")
  for u in units:
    if isinstance(u, bool) or not isinstance(u, int) or u <= 0:
      raise ValueError(f"{name} must contain only ints >= 1, got {units!r}")
  return tuple(int(u) for u in units)


def validate_positive_int(name, value, minimum=1):
  """Returns `value` if it is an int >= `minimum`, else raises ValueError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
  return int(value)


def validate_rate(name, value):
  """Returns `value` as a float if it lies in [0, 1), else raises ValueError."""
  if (isinstance(value, bool) or not isinstance(value, (int, float)) or
      not 0.0 <= value < 1.0):
    raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
  return float(value)


def validate_non_negative(name, value):
  """Returns `value` as a float if it is finite and >= 0, else raises."""
  if (isinstance(value, bool) or not isinstance(value, (int, float)) or
      not math.isfinite(value) or value < 0):
    raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")
  return float(value)


def validate_seed(value):
  """Returns `value` if it is a non-negative int, else raises ValueError."""
  return validate_positive_int("seed", value, minimum=0)


def validate_activation(value):
  """Returns `value` if Keras knows it as an activation name, else raises."""
  if not isinstance(value, str):
    raise ValueError(f"activation must be a Keras activation name (str), "
                     f"got {value!r}")
  try:
    tf_keras.activations.get(value)
  except ValueError as e:
    raise ValueError(f"activation {value!r} is not a known Keras activation "
                     "(e.g. 'relu', 'gelu', 'swish', 'tanh', 'linear')") from e
  return value


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class MLP(tf_keras.layers.Layer):
  """Stack of Dense + activation (+ BatchNorm) (+ Dropout) blocks.

  Every block, the last one included, applies the activation: the output is a
  hidden representation, not a logit.

  Call:
    x: [batch, in] float.
    training: Python bool or None; enables dropout and batch statistics.

  Returns:
    [batch, units[-1]] in the layer's compute dtype.
  """

  def __init__(self, units, activation="relu", dropout=0.0,
               use_batch_norm=False, l2=0.0, seed=0, **kwargs):
    """Creates the MLP.

    Args:
      units: tuple of layer widths, each >= 1.
      activation: Keras activation name applied after every Dense.
      dropout: dropout rate in [0, 1) after every block (training only).
      use_batch_norm: whether to batch-normalise after each activation.
      l2: L2 weight on every Dense kernel, >= 0.
      seed: int seed; every block derives its own (see `derive_seed`).
      **kwargs: standard Layer arguments (name, dtype, ...).

    Raises:
      ValueError: naming the argument that is out of range.
    """
    super().__init__(**kwargs)
    self.units = validate_units("units", units)
    self.activation = validate_activation(activation)
    self.dropout = validate_rate("dropout", dropout)
    self.use_batch_norm = bool(use_batch_norm)
    self.l2 = validate_non_negative("l2", l2)
    self.seed = validate_seed(seed)
    regularizer = tf_keras.regularizers.L2(self.l2) if self.l2 > 0 else None
    self._blocks = []
    for i, width in enumerate(self.units):
      block = [tf_keras.layers.Dense(
          width, activation=self.activation,
          kernel_initializer=tf_keras.initializers.GlorotUniform(
              seed=derive_seed(seed, "dense", i)),
          kernel_regularizer=regularizer, name=f"dense_{i}")]
      if self.use_batch_norm:
        block.append(tf_keras.layers.BatchNormalization(name=f"bn_{i}"))
      if self.dropout > 0:
        block.append(tf_keras.layers.Dropout(
            self.dropout, seed=derive_seed(seed, "dropout", i),
            name=f"dropout_{i}"))
      self._blocks.append(block)

  def call(self, x, training=None):
    """x `[batch, in]` (or, into a built MLP, its `FactoredFields`:
    layers/factored.py) -> `[batch, units[-1]]`."""
    for block in self._blocks:
      for layer in block:
        if isinstance(x, factored.FactoredFields):   # the first Dense, built
          x = layer.activation(x.matmul(layer.kernel) + layer.bias)
        elif isinstance(layer, tf_keras.layers.Dense):
          x = layer(x)
        else:
          x = layer(x, training=training)
    return x

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate([self.units[-1]])

  def get_config(self):
    config = super().get_config()
    config.update(units=list(self.units), activation=self.activation,
                  dropout=self.dropout, use_batch_norm=self.use_batch_norm,
                  l2=self.l2, seed=self.seed)
    return config
