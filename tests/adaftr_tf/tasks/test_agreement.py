"""Tests of adaftr_tf.tasks.agreement: the measured per-instance gradient
agreement (AgreementProbe, through `CtrCvrModel.gradient_agreement`)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.losses import bce_with_logits, ctcvr_bce
from tests.helpers.data import agreement_model


def _cosine(g1, g2):
  return g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2))


@pytest.mark.parametrize("source, representation, backbone", [
    ("logits", "embeddings", "mmoe"), ("losses", "embeddings", "mmoe"),
    ("losses", "experts", "mmoe"), ("logits", "experts", "shared_bottom"),
    ("losses", "experts", "ple")])
def test_per_instance_cosine_equals_example_by_example_loop(
    source, representation, backbone):
  model, (features, labels) = agreement_model(
      f"loss.agreement_source={source}",
      f"loss.agreement_representation={representation}",
      f"model.backbone={backbone}")
  vectorised = model.gradient_agreement(features, labels).numpy()
  expected = []
  for i in range(vectorised.shape[0]):
    one = {k: v[i:i + 1] for k, v in features.items()}
    x, x_cvr = model._embed(one)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(x)
      captured = []
      tap = None if representation == "embeddings" else (
          lambda t: captured.append(t) or t)
      outputs = model._predict(x, x_cvr, False, tap)
      x = captured[0] if captured else x
      if source == "logits":
        first, second = outputs[F.CTR_LOGIT], outputs[F.CVR_LOGIT]
      else:
        first = bce_with_logits(labels[F.CLICK][i:i + 1], outputs[F.CTR_LOGIT])
        second = ctcvr_bce(labels[F.CONVERSION][i:i + 1],
                           outputs[F.CTR_LOGIT], outputs[F.CVR_LOGIT])
    expected.append(_cosine(tape.gradient(first, x).numpy().ravel(),
                            tape.gradient(second, x).numpy().ravel()))
  np.testing.assert_allclose(vectorised, expected, atol=1e-5)
  assert np.all(np.abs(vectorised) <= 1 + 1e-6)
  assert np.std(vectorised) > 0   # not a constant


def test_loss_cosine_is_the_logit_cosine_signed_by_the_label_pattern():
  """cos(dL_ctr, dL_ctcvr) = sign((p_ctr - click)(p_ctcvr - conversion)) *
  cos(d ctr_logit, d ctcvr_logit): the loss cosine mostly encodes labels."""
  model, (features, labels) = agreement_model("loss.agreement_source=losses",
                                               rows=64)
  by_losses = model.gradient_agreement(features, labels).numpy()
  x, x_cvr = model._embed(features)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    outputs = model._predict(x, x_cvr, False)
  ga = tape.gradient(outputs[F.CTR_LOGIT], x).numpy()
  gz = tape.gradient(outputs[F.CTCVR_LOGIT], x).numpy()
  sign = np.sign((outputs[F.CTR].numpy() - labels[F.CLICK].numpy())
                 * (outputs[F.CTCVR].numpy() - labels[F.CONVERSION].numpy()))
  expected = sign * np.array([_cosine(a, z) for a, z in zip(ga, gz)])
  np.testing.assert_allclose(by_losses, expected, atol=1e-5)
  clicked_unconverted = ((labels[F.CLICK].numpy() == 1)
                         & (labels[F.CONVERSION].numpy() == 0))
  # Every clicked, unconverted impression has its logit cosine negated.
  assert clicked_unconverted.any()
  assert np.all(sign[clicked_unconverted] < 0)
  assert np.all(sign[~clicked_unconverted] > 0)
