"""Gradient-agreement relatedness (relatedness_signal=gradient_agreement)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import config as config_lib
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.layers import RelatednessNetwork
from adaftr_tf.losses import bce_with_logits, ctcvr_bce
from pipelines import input as data_input
from pipelines import synthetic


def _model_and_batch(*overrides, rows=16):
  config = config_lib.apply_overrides(config_lib.get_preset("tiny"), [
      "loss.relatedness_signal=gradient_agreement", *overrides])
  columns = synthetic.generate_split(config.data.synthetic, "train", rows)
  schema = synthetic.synthetic_schema(config.data.synthetic)
  batch = next(iter(data_input.in_memory_dataset(columns, schema, rows,
                                                 training=False)))
  model = models.compile_model(models.build_model(config, schema), config)
  return model, batch


def test_per_instance_cosine_equals_example_by_example_loop():
  model, (features, labels) = _model_and_batch()
  vectorised = model.gradient_agreement(features, labels).numpy()
  expected = []
  for i in range(vectorised.shape[0]):
    one = {k: v[i:i + 1] for k, v in features.items()}
    x, x_cvr = model._embed(one)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(x)
      outputs = model._heads(x, x_cvr, False)
      ctr = bce_with_logits(labels[F.CLICK][i:i + 1], outputs[F.CTR_LOGIT])
      ctcvr = ctcvr_bce(labels[F.CONVERSION][i:i + 1], outputs[F.CTR_LOGIT],
                        outputs[F.CVR_LOGIT])
    g1 = tape.gradient(ctr, x).numpy().ravel()
    g2 = tape.gradient(ctcvr, x).numpy().ravel()
    expected.append(g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2)))
  np.testing.assert_allclose(vectorised, expected, atol=1e-5)
  assert np.all(np.abs(vectorised) <= 1 + 1e-6)


def test_tau_decreases_as_predicted_agreement_increases():
  network = RelatednessNetwork((4,), tau_min=0.05, tau_max=1.0)
  logits = tf.constant(np.linspace(-8, 8, 33), tf.float32)
  predicted_agreement = tf.sigmoid(-logits).numpy()  # rho_hat = sigmoid(-f)
  tau = network.tau_from_logit(logits).numpy()
  order = np.argsort(predicted_agreement)
  assert np.all(np.diff(tau[order]) < 0)
  assert tau.min() >= 0.05 and tau.max() <= 1.0


def test_infonce_does_not_train_the_relatedness_network():
  model, batch = _model_and_batch("loss.relatedness_loss_weight=0",
                                  "loss.contrastive_weight=1.0")
  relatedness = model.alignment.relatedness
  model.compute_loss(batch, training=True)  # build every variable
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert relatedness.trainable_variables
  assert all(g is None or not np.any(g.numpy()) for g in grads)
  # With the regression weight on, the same variables do get gradient.
  model.relatedness_loss_weight = 1.0
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert any(g is not None and np.any(g.numpy()) for g in grads)


def test_contrastive_signal_does_train_the_relatedness_network():
  model, batch = _model_and_batch("loss.relatedness_signal=contrastive")
  relatedness = model.alignment.relatedness
  model.compute_loss(batch, training=True)
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert any(g is not None and np.any(g.numpy()) for g in grads)


@pytest.mark.parametrize("overrides, message", [
    (["loss.relatedness_signal=gradient_agreement",
      "loss.temperature_mode=global"], "needs loss.temperature_mode=instance"),
    (["loss.relatedness_signal=fixed"], "needs loss.temperature_mode=fixed"),
])
def test_contradictory_signal_and_mode_are_rejected(overrides, message):
  config = config_lib.apply_overrides(config_lib.get_preset("tiny"), overrides)
  with pytest.raises(ValueError, match=message):
    config.validate()
