"""Relatedness prediction network: the bounded InfoNCE temperature tau."""

import math

import tensorflow as tf
import tf_keras

from adaftr_tf import choices
from adaftr_tf.layers.mlp import MLP
from adaftr_tf.layers.mlp import derive_seed
from adaftr_tf.layers.mlp import validate_seed
from adaftr_tf.layers.mlp import validate_units

def _check_float(name, value):
  if (isinstance(value, bool) or not isinstance(value, (int, float)) or
      not math.isfinite(value) or value <= 0):
    raise ValueError(f"{name} must be a finite float > 0, got {value!r}")
  return float(value)


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class RelatednessNetwork(tf_keras.layers.Layer):
  """Predicts the per-instance InfoNCE temperature.

  `tau_i = tau_min + (tau_max - tau_min) * sigmoid(f(x_i))`. A small tau asks
  for strong CTR/CVR alignment of instance i, a large one for weak alignment.
  The bounds matter: trained only through the contrastive loss, an unbounded
  tau would run to 0 or infinity.

  Modes:
    instance: f = Dense(1) after MLP(units) (or directly on x if units == ()).
    global: f is one learned scalar, shared by every instance.
    fixed: tau_i = fixed_tau, no trainable variables.

  In instance and global mode f starts at the logit that puts tau at the
  geometric mean sqrt(tau_min * tau_max), the middle of the range on the log
  scale that temperatures act on (the fixed-mode default too).

  Call:
    x: [batch, in] float. training: enables dropout (none used here).

  Returns:
    tau [batch] float32 within [tau_min, tau_max].
  """

  def __init__(self, units, tau_min, tau_max, mode="instance", fixed_tau=None,
               seed=0, **kwargs):
    """Creates the network.

    Args:
      units: hidden widths of f in instance mode (each >= 1; may be empty);
        ignored otherwise.
      tau_min: lower bound of tau, finite and > 0.
      tau_max: upper bound, finite and > tau_min (>= tau_min in fixed mode).
      mode: one of `choices.TemperatureMode`.
      fixed_tau: fixed-mode temperature, in [tau_min, tau_max]; None means
        sqrt(tau_min * tau_max). Only used in fixed mode.
      seed: int seed of f's initial weights.
      **kwargs: standard Layer arguments.

    Raises:
      ValueError: naming the argument that is invalid.
    """
    super().__init__(**kwargs)
    choices.check("mode", mode, choices.TemperatureMode)
    self.mode = mode
    self.units = validate_units("units", units, allow_empty=True)
    self.tau_min = _check_float("tau_min", tau_min)
    self.tau_max = _check_float("tau_max", tau_max)
    if self.tau_max < self.tau_min or (mode != "fixed" and
                                       self.tau_max == self.tau_min):
      relation = ">=" if mode == "fixed" else ">"
      raise ValueError(f"tau_max must be {relation} tau_min in mode {mode!r}, "
                       f"got tau_min={tau_min!r}, tau_max={tau_max!r}")
    self.fixed_tau = (None if fixed_tau is None
                      else _check_float("fixed_tau", fixed_tau))
    self.seed = validate_seed(seed)
    if mode == "fixed":
      tau = (math.sqrt(self.tau_min * self.tau_max) if self.fixed_tau is None
             else self.fixed_tau)
      if not self.tau_min <= tau <= self.tau_max:
        raise ValueError(f"fixed_tau must lie in [tau_min, tau_max] = "
                         f"[{self.tau_min}, {self.tau_max}], got {fixed_tau!r}")
      self._tau = tau
      return
    mid = math.sqrt(self.tau_min * self.tau_max)
    frac = (mid - self.tau_min) / (self.tau_max - self.tau_min)
    self._initial_logit = math.log(frac / (1.0 - frac))
    if mode == "instance":
      self._mlp = (MLP(self.units, seed=self.seed, name="mlp")
                   if self.units else None)
      # A small kernel keeps every instance's initial tau near the middle.
      self._head = tf_keras.layers.Dense(
          1, kernel_initializer=tf_keras.initializers.VarianceScaling(
              scale=0.01, mode="fan_avg", distribution="uniform",
              seed=derive_seed(self.seed, "logit")),
          bias_initializer=tf_keras.initializers.Constant(
              self._initial_logit), name="logit")
    else:
      self.global_logit = self.add_weight(
          "global_logit", shape=[], dtype=tf.float32,
          initializer=tf_keras.initializers.Constant(self._initial_logit))

  def relatedness_logit(self, x, training=None):
    """Returns f(x) [batch] float32 (instance and global mode).

    Raises:
      ValueError: in fixed mode, which has no f.
    """
    if self.mode == "fixed":
      raise ValueError("relatedness_logit needs mode 'instance' or 'global', "
                       "got mode 'fixed'")
    if self.mode == "global":
      return tf.broadcast_to(tf.cast(self.global_logit, tf.float32),
                             tf.shape(x)[:1])
    h = self._mlp(x, training=training) if self._mlp is not None else x
    return tf.cast(tf.squeeze(self._head(h), axis=-1), tf.float32)

  def linear_weights(self):
    """(kernel `[in, 1]`, bias `[1]`) of a linear f (instance mode with
    `units == ()`): f(x) = x @ kernel + bias.

    Raises:
      ValueError: for f with hidden layers, a global or a fixed tau.
    """
    if self.mode != "instance" or self._mlp is not None:
      raise ValueError("linear_weights needs a linear relatedness network "
                       f"(mode 'instance', units ()), got mode {self.mode!r}, "
                       f"units {self.units}")
    return self._head.kernel, self._head.bias

  def call(self, x, training=None):
    if self.mode == "fixed":
      return tf.fill(tf.shape(x)[:1], tf.constant(self._tau, tf.float32))
    return self.tau_from_logit(self.relatedness_logit(x, training=training))

  def tau_from_logit(self, logit):
    """tau = tau_min + (tau_max - tau_min) * sigmoid(logit), `[batch]`."""
    weight = tf.sigmoid(tf.cast(logit, tf.float32))
    tau = self.tau_min + (self.tau_max - self.tau_min) * weight
    # float32 rounding could step just outside the range at saturation.
    return tf.clip_by_value(tau, self.tau_min, self.tau_max)

  def get_config(self):
    config = super().get_config()
    config.update(units=list(self.units), tau_min=self.tau_min,
                  tau_max=self.tau_max, mode=self.mode,
                  fixed_tau=self.fixed_tau, seed=self.seed)
    return config
