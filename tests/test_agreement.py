"""Gradient-agreement relatedness (relatedness_signal=gradient_agreement)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import overrides

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.layers import RelatednessNetwork
from adaftr_tf.losses import bce_with_logits, ctcvr_bce
from pipelines.data import reader
from pipelines.data import synthetic
from tests.helpers.data import in_memory_dataset


def _model_and_batch(*items, rows=16):
  config = overrides.apply(experiments.get_preset("tiny"), [
      "loss.relatedness_signal=gradient_agreement", *items])
  columns = synthetic.generate_split(config.data.synthetic, "train", rows)
  schema = synthetic.synthetic_schema(config.data.synthetic)
  batch = next(iter(in_memory_dataset(columns, schema, rows,
                                                 training=False)))
  model = models.compile_model(models.build_model(config, schema), config)
  return model, batch


def _cosine(g1, g2):
  return g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2))


@pytest.mark.parametrize("source, representation, backbone", [
    ("logits", "embeddings", "mmoe"), ("losses", "embeddings", "mmoe"),
    ("losses", "experts", "mmoe"), ("logits", "experts", "shared_bottom"),
    ("losses", "experts", "ple")])
def test_per_instance_cosine_equals_example_by_example_loop(
    source, representation, backbone):
  model, (features, labels) = _model_and_batch(
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
  model, (features, labels) = _model_and_batch("loss.agreement_source=losses",
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
  relatedness = model.alignment_task.alignment.relatedness
  model.compute_loss(batch, training=True)  # build every variable
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert relatedness.trainable_variables
  assert all(g is None or not np.any(g.numpy()) for g in grads)
  # With the regression weight on, the same variables do get gradient.
  model.alignment_task.regression_weight = 1.0
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert any(g is not None and np.any(g.numpy()) for g in grads)


def test_contrastive_signal_does_train_the_relatedness_network():
  model, batch = _model_and_batch("loss.relatedness_signal=contrastive")
  relatedness = model.alignment_task.alignment.relatedness
  model.compute_loss(batch, training=True)
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  grads = tape.gradient(loss, relatedness.trainable_variables)
  assert any(g is not None and np.any(g.numpy()) for g in grads)


def test_expert_representation_trains_with_finite_losses():
  model, batch = _model_and_batch("loss.agreement_representation=experts")
  losses = [float(model.train_step(batch)["loss"]) for _ in range(3)]
  assert np.all(np.isfinite(losses))
  assert model.alignment_task.agreement_tracker.result().numpy() != 0


@pytest.mark.parametrize("items, message", [
    (["loss.agreement_representation=experts",
      "model.backbone=shared_embedding"], "needs shared experts"),
    (["loss.agreement_representation=experts", "model.backbone=ple",
      "model.ple_shared_experts=0"], "needs shared experts"),
    (["loss.relatedness_signal=gradient_agreement",
      "loss.temperature_mode=global"], "needs loss.temperature_mode=instance"),
    (["loss.relatedness_signal=fixed"], "needs loss.temperature_mode=fixed"),
])
def test_contradictory_signal_and_mode_are_rejected(items, message):
  config = overrides.apply(experiments.get_preset("tiny"), items)
  with pytest.raises(ValueError, match=message):
    config.validate()


def test_predicted_relatedness_tracks_planted_relatedness(tmp_path):
  """Strongly planted relatedness (many clicks and purchases, a strong
  signal): after a short run the relatedness network's prediction (-tau)
  ranks the validation rows like the planted r. Measured Spearman for seeds
  42 (this test), 5, 9, 0, 1, 2: +0.19, +0.36, +0.06, +0.22, +0.09, +0.06
  (mean +0.16). Which value a seed gives depends on float rounding (it moved
  when the InfoNCE became one fused XLA loss), so the test asserts the sign,
  which every measured trajectory had. The measured agreement itself is not
  reliably positive (-0.005 to +0.38), so it is only checked to be defined."""
  from pipelines.training import train_lib
  config = overrides.apply(experiments.get_preset("tiny"), [
      "data.synthetic.num_train=40000", "data.synthetic.num_valid=5000",
      "data.synthetic.click_rate=0.3", "data.synthetic.cvr_rate=0.5",
      "data.synthetic.signal_scale=3", "train.epochs=4",
      "loss.relatedness_signal=gradient_agreement"])
  result = train_lib.train(config, str(tmp_path / "model"),
                          str(tmp_path / "data"), verbose=0,
                          log=lambda _: None)
  valid = result["valid"]
  assert valid["spearman_neg_tau_vs_r"] > 0.0, valid
  assert np.isfinite(valid["spearman_agreement_vs_r"]), valid
  assert valid["tau_std"] > 0.01   # not collapsed to one value
