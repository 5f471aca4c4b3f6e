"""Tests of adaftr_tf/layers/calibration.py: the Keras layer computes what
calibration.apply_numpy computes, and round-trips its config."""

import numpy as np
import tensorflow as tf

from adaftr_tf import calibration as C
from adaftr_tf import features as F
from adaftr_tf.layers.calibration import OutputCalibration
from adaftr_tf.layers.calibration import apply_curve


def test_layer_equals_the_numpy_calibrator_inside_and_beyond_the_knots():
  rng = np.random.default_rng(0)
  z = rng.normal(-1, 1.5, 50_000)
  y = (rng.random(50_000) < 1 / (1 + np.exp(-(0.5 * z - 1)))).astype(float)
  curve = C.fit_isotonic(z, y)
  grid = np.concatenate([np.linspace(-40, 40, 4001), curve.x]).astype(
      np.float32)
  np.testing.assert_allclose(apply_curve(curve, tf.constant(grid)).numpy(),
                             C.apply_numpy(curve, grid), rtol=1e-6, atol=1e-5)
  calibration = C.Calibration("isotonic", {F.CTR_LOGIT: curve,
                                           F.CTCVR_LOGIT: C.fit_platt(z, y)})
  layer = OutputCalibration(calibration.to_json())
  logits = {k: tf.constant(grid) for k in C.LOGIT_OF.values()}
  out = layer(logits)
  for output, key in C.LOGIT_OF.items():
    expected = 1 / (1 + np.exp(-C.apply_numpy(calibration.curve(key), grid)))
    np.testing.assert_allclose(out[output].numpy(), expected, atol=1e-6)
  np.testing.assert_allclose(out[F.CVR].numpy(), tf.sigmoid(grid).numpy(),
                             atol=1e-6)   # no CVR curve: the identity
  again = OutputCalibration.from_config(layer.get_config())
  assert again.calibration == calibration and not again.trainable
