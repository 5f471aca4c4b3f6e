"""The fitted calibrators as a Keras layer (inside the exported SavedModel)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from adaftr_tf import calibration as calibration_lib


def apply_curve(curve: calibration_lib.Curve, z: tf.Tensor) -> tf.Tensor:
  """Calibrated logits `[batch]` float32 of logits z `[batch]`: the function
  `calibration.apply_numpy` computes (float64 inside)."""
  z = tf.cast(z, tf.float64)
  x = tf.constant(curve.x, tf.float64)
  t = tf.constant(curve.t, tf.float64)
  last = len(curve.x) - 1
  index = tf.clip_by_value(tf.searchsorted(x, z, side="right"), 1, last)
  x0, x1 = tf.gather(x, index - 1), tf.gather(x, index)
  t0, t1 = tf.gather(t, index - 1), tf.gather(t, index)
  inside = t0 + (z - x0) * (t1 - t0) / (x1 - x0)
  below = t[0] + (z - x[0]) * curve.low_slope
  above = t[last] + (z - x[last]) * curve.high_slope
  out = tf.where(z < x[0], below, tf.where(z > x[last], above, inside))
  return tf.cast(out, tf.float32)


@tf_keras.utils.register_keras_serializable(package="adaftr_tf")
class OutputCalibration(tf_keras.layers.Layer):
  """Calibrated probabilities from a model's outputs.

  Args:
    calibration: `Calibration.to_json()` text (plain, so `get_config`
      round-trips).

  Call:
    outputs: the model's output dict (`ctr_logit`, `cvr_logit`,
      `ctcvr_logit` `[batch]`).

  Returns:
    {ctr, cvr, ctcvr} `[batch]` float32: the sigmoid of each calibrated
    logit (calibration.LOGIT_OF).
  """

  def __init__(self, calibration: str, **kwargs):
    kwargs["trainable"] = False   # fitted after training, never trained
    super().__init__(**kwargs)
    self.calibration_json = calibration
    self.calibration = calibration_lib.Calibration.from_json(calibration)

  def call(self, outputs):
    return {output: tf.sigmoid(apply_curve(self.calibration.curve(key),
                                           outputs[key]))
            for output, key in calibration_lib.LOGIT_OF.items()}

  def get_config(self):
    return {**super().get_config(), "calibration": self.calibration_json}


def output_calibration(calibration: calibration_lib.Calibration | None,
                       **kwargs) -> OutputCalibration | None:
  """The layer serving `calibration`, or None when there is nothing to
  apply (no calibration, or `none`: the model's own probabilities)."""
  if calibration is None or not calibration.curves:
    return None
  return OutputCalibration(calibration.to_json(), **kwargs)
