"""AITM's behavioural calibrator as an auxiliary objective."""

from __future__ import annotations

import tf_keras

from adaftr_tf import features as F
from adaftr_tf.losses import behavioural_calibration


class CalibrationTask(tf_keras.layers.Layer):
  """`weight * max(p_ctcvr - p_ctr, 0)` per impression (losses/multitask.py):
  the funnel's order, a conversion needs a click, as a penalty.

  Call:
    embeddings, labels, agreement, step, meta: unused (the objective interface,
      see `CtrCvrModel`).
    outputs: the model's outputs (`ctr_logit`, `ctcvr_logit` `[batch]`).

  Returns:
    (loss `[batch]`, {}): no extra outputs.
  """

  def __init__(self, weight: float, **kwargs):
    super().__init__(**kwargs)
    self.weight = float(weight)
    self.needs_agreement = self.needs_recording = False

  def call(self, embeddings, outputs, labels=None, agreement=None, step=None,
           training=None, features=None, oracle=None, meta=None):
    del embeddings, labels, agreement, step, training, features, oracle, meta
    return self.weight * behavioural_calibration(
        outputs[F.CTR_LOGIT], outputs[F.CTCVR_LOGIT]), {}

  def inference_outputs(self, embeddings, outputs, training=None):
    del embeddings, outputs, training
    return {}
