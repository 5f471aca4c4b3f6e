"""Tests of adaftr_tf.tasks.calibration: AITM's behavioural calibrator."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.tasks import CalibrationTask


def test_penalises_a_ctcvr_above_the_ctr_by_the_weight():
  task = CalibrationTask(0.5)
  assert not task.needs_agreement
  a = np.array([0.0, 1.0, -2.0, 3.0], np.float32)
  z = np.array([1.0, 0.5, -1.0, 3.0], np.float32)
  outputs = {F.CTR_LOGIT: tf.constant(a), F.CTCVR_LOGIT: tf.constant(z)}
  loss, extra = task(None, outputs)
  sigmoid = lambda x: 1 / (1 + np.exp(-x.astype(np.float64)))
  expected = 0.5 * np.maximum(sigmoid(z) - sigmoid(a), 0)
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-7)
  assert extra == {}
  assert loss.numpy()[1] == 0 and loss.numpy()[3] == pytest.approx(0)
  assert task.inference_outputs(None, outputs) == {}
