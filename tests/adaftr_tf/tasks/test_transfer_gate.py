"""Tests of adaftr_tf/tasks/transfer_gate.py: the probe's loss and gradients,
that it estimates slopes, and the slope-to-tau map; its use in the model."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.tasks import transfer_gate as gate


def _bce(y, z):
  return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def test_probe_loss_is_the_clicked_rows_bce_around_the_clicked_mean():
  rng = np.random.default_rng(0)
  a = rng.normal(size=8).astype(np.float32)
  g = rng.uniform(0, 2, size=8).astype(np.float32)
  click = np.array([1, 0, 1, 1, 0, 1, 0, 1], np.float32)
  conversion = np.array([1, 0, 0, 1, 0, 0, 0, 1], np.float32)
  loss = gate.probe_loss(tf.constant(g), tf.constant(a), tf.constant(click),
                         tf.constant(conversion), tf.constant(-1.5)).numpy()
  a_bar = a[click == 1].mean()
  expected = click * _bce(conversion, -1.5 + g * (a - a_bar))
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-7)
  assert np.all(loss[click == 0] == 0)


def test_probe_gradients_reach_the_slope_only():
  g = tf.Variable([0.5, 1.0, 0.2])
  a = tf.Variable([1.0, -1.0, 2.0])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(gate.probe_loss(g, a, tf.constant([1.0, 1.0, 0.0]),
                                         tf.constant([1.0, 0.0, 0.0]),
                                         tf.constant(0.0)))
  grad_g, grad_a = tape.gradient(loss, [g, a])
  assert grad_a is None   # the CTR logit is stop-gradient
  assert np.all(grad_g.numpy()[:2] != 0) and grad_g.numpy()[2] == 0


def test_the_probe_recovers_the_order_of_planted_slopes():
  """Two groups whose conversions follow the click logit with slopes 0.2
  and 1.0: fitting one g per group by the probe loss ranks them right."""
  rng = np.random.default_rng(1)
  n = 20_000
  group = rng.integers(0, 2, n)
  a = rng.normal(size=n).astype(np.float32)
  true = np.where(group == 1, 1.0, 0.2)
  conversion = (rng.random(n) < 1 / (1 + np.exp(-(-1.0 + true * a)))).astype(
      np.float32)
  f = tf.Variable([0.0, 0.0])
  intercept = tf.Variable(0.0)
  for _ in range(300):
    with tf.GradientTape() as tape:
      g = gate.slope(tf.gather(f, group))
      loss = tf.reduce_mean(gate.probe_loss(g, a, tf.ones(n), conversion,
                                            intercept))
    for var, grad in zip((f, intercept), tape.gradient(loss, [f, intercept])):
      var.assign_sub(0.5 * tf.convert_to_tensor(grad))
  slopes = gate.slope(f).numpy()
  assert slopes[1] > slopes[0] + 0.4
  np.testing.assert_allclose(slopes, [0.2, 1.0], atol=0.15)


@pytest.mark.parametrize("quantile", [None, 0.05, 0.25, 0.0])
def test_tau_follows_the_slope_rank_and_stays_weak_before_it_spreads(
    quantile):
  g = tf.constant(np.linspace(0.0, 1.0, 101), tf.float32)
  args = () if quantile is None else (quantile,)
  tau = gate.gate_tau(g, 0.05, 1.0, *args).numpy()
  assert np.all(np.diff(tau) <= 0)               # higher slope, smaller tau
  assert tau[0] == pytest.approx(1.0) and tau[-1] == pytest.approx(0.05)
  # The q and 1 - q quantiles (floor index of 101 evenly spaced slopes).
  low = quantile if quantile is not None else 0.05
  high = 1.0 - low
  rho = np.clip((g.numpy() - low) / (high - low), 0, 1)
  np.testing.assert_allclose(tau, 1.0 - 0.95 * rho, rtol=1e-5, atol=1e-6)
  # A quarter of the slopes at each bound with q = 0.25 (a steeper map).
  at_bounds = np.mean((tau <= 0.05 + 1e-6) | (tau >= 1.0 - 1e-6))
  assert at_bounds == pytest.approx(2 * low, abs=0.02)
  # Slopes that have not spread: tau stays near tau_max (weak alignment).
  flat = gate.gate_tau(tf.constant([0.30, 0.31, 0.305, 0.30]), 0.05, 1.0)
  assert np.all(flat.numpy() > 1.0 - 0.95 * (0.01 / gate.MIN_SPREAD) - 1e-6)


@pytest.mark.parametrize("quantile", [0.05, 0.25])
def test_the_alignment_objective_adds_the_probe_to_infonce(quantile):
  from adaftr_tf import models
  from adaftr_tf.losses import info_nce
  from tests.helpers.data import synthetic_batch
  from tests.helpers.data import tiny_config
  config = tiny_config("loss.relatedness_signal=transfer_gate",
                       "loss.negatives=in_batch",
                       "loss.symmetric=false", "loss.contrastive_weight=0.5",
                       "loss.relatedness_loss_weight=2.0",
                       f"loss.gate_quantile={quantile}")
  (features, labels), schema = synthetic_batch(config, 64)
  model = models.build_model(config, schema)
  task = model.alignment_task
  x, _ = model._embed(features)
  outputs = model._predict(x, None, False)
  loss, extra = task(x, outputs, labels, training=False)
  _, f = task.alignment.temperature(x, outputs[F.H_CTR], outputs[F.H_CVR])
  g = gate.slope(f)
  tau = gate.gate_tau(g, 0.05, 1.0, quantile)
  np.testing.assert_allclose(extra[F.TAU].numpy(), tau.numpy(), rtol=1e-6)
  u = task.alignment.ctr_projection(outputs[F.H_CTR])
  v = task.alignment.cvr_projection(outputs[F.H_CVR])
  expected = 2.0 * gate.probe_loss(
      g, outputs[F.CTR_LOGIT], labels[F.CLICK], labels[F.CONVERSION],
      gate.INITIAL_INTERCEPT) + 0.5 * info_nce(u, v, tau)
  np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-5)
  inferred = model(features, training=False)[F.TAU]
  np.testing.assert_allclose(inferred.numpy(), tau.numpy(), rtol=1e-6)


def test_a_pruned_gate_reads_tau_through_its_fields_and_probes_all():
  """loss.gate_field_share: tau (in training, inference and as a teacher)
  is the gate map of the linear f's logit summed over the fields carrying
  at least the share of its variance in the batch (numpy, on a kernel whose
  last fields weigh 100x less); the probe reads f over every field."""
  from adaftr_tf import models
  from adaftr_tf.losses import info_nce
  from tests.helpers.data import synthetic_batch
  from tests.helpers.data import tiny_config
  config = tiny_config("loss.relatedness_signal=transfer_gate",
                       "model.relatedness_units=()", "loss.negatives=in_batch",
                       "loss.symmetric=false", "loss.contrastive_weight=0.5",
                       "loss.gate_quantile=0.25", "loss.gate_field_share=0.03")
  (features, labels), schema = synthetic_batch(config, 128)
  model = models.build_model(config, schema)
  task = model.alignment_task
  x, _ = model._embed(features)
  outputs = model._predict(x, None, False)
  model(features, training=False)   # builds f
  kernel, bias = task.alignment.relatedness.linear_weights()
  dim, fields = config.model.embedding_dim, model.embedding.num_fields
  rng = np.random.default_rng(3)
  weights = rng.normal(size=(fields, dim)).astype(np.float32)
  weights[fields // 2:] *= 0.01          # these fields carry ~1e-4 each
  kernel.assign(weights.reshape(-1, 1))
  bias.assign([0.3])
  xs = x.numpy().reshape(-1, fields, dim)
  parts = (xs * weights).sum(-1)                           # [batch, F]
  shares = parts.var(0) / parts.var(0).sum()
  keep = shares >= 0.03
  assert keep.sum() >= 2 and not keep[fields // 2:].any()
  pruned = parts[:, keep].sum(1) + 0.3
  tau = gate.gate_tau(gate.slope(tf.constant(pruned)), 0.05, 1.0, 0.25)
  loss, extra = task(x, outputs, labels, training=False)
  np.testing.assert_allclose(extra[F.TAU].numpy(), tau.numpy(), rtol=1e-5,
                             atol=1e-6)
  full = gate.slope(tf.constant(parts.sum(1) + 0.3))
  u = task.alignment.ctr_projection(outputs[F.H_CTR])
  v = task.alignment.cvr_projection(outputs[F.H_CVR])
  expected = gate.probe_loss(
      full, outputs[F.CTR_LOGIT], labels[F.CLICK], labels[F.CONVERSION],
      gate.INITIAL_INTERCEPT) + 0.5 * info_nce(u, v, tau)
  np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-4,
                             atol=1e-6)
  for served in (model(features, training=False)[F.TAU],
                 model.instance_tau(features)):
    np.testing.assert_allclose(served.numpy(), tau.numpy(), rtol=1e-5,
                               atol=1e-6)
  # Read without the share (a student's teacher_field_share overrides it):
  # every field's logit, a different tau.
  unpruned = gate.gate_tau(full, 0.05, 1.0, 0.25).numpy()
  assert np.abs(unpruned - tau.numpy()).max() > 1e-3
  np.testing.assert_allclose(model.instance_tau(features, 0.5).numpy(),
                             gate.gate_tau(gate.slope(tf.constant(
                                 parts[:, shares >= 0.5].sum(1) + 0.3)),
                                 0.05, 1.0, 0.25).numpy(), rtol=1e-5,
                             atol=1e-6)


def test_the_gate_needs_a_network_on_the_embeddings():
  from adaftr_tf.config import ConfigError
  from tests.helpers.data import tiny_config
  with pytest.raises(ConfigError, match="transfer_gate needs "
                     "loss.relatedness_input=embeddings"):
    tiny_config("loss.relatedness_signal=transfer_gate",
                "loss.relatedness_input=towers_detached").validate()


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_the_probe_trains_the_embeddings_only_without_the_stop_gradient(
    stop_gradient):
  from adaftr_tf import models
  from tests.helpers.data import synthetic_batch
  from tests.helpers.data import tiny_config
  config = tiny_config("loss.relatedness_signal=transfer_gate",
                       "loss.contrastive_weight=0.5",
                       f"loss.relatedness_stop_gradient={stop_gradient}")
  (features, labels), schema = synthetic_batch(config, 256)
  model = models.build_model(config, schema)
  task = model.alignment_task
  x, _ = model._embed(features)
  outputs = model._predict(x, None, False)
  with tf.GradientTape() as tape:
    x, _ = model._embed(features)
    _, f = task.alignment.temperature(x, outputs[F.H_CTR], outputs[F.H_CVR])
    probe = tf.reduce_sum(gate.probe_loss(
        gate.slope(f), outputs[F.CTR_LOGIT], labels[F.CLICK],
        labels[F.CONVERSION], task.gate_intercept))
  grads = tape.gradient(probe, model.embedding.trainable_variables)
  reached = any(g is not None and np.any(tf.convert_to_tensor(g).numpy())
                for g in grads)
  assert reached == (not stop_gradient)


def _delayed_gate(start, total_steps):
  from adaftr_tf import models
  from tests.helpers.data import synthetic_batch
  from tests.helpers.data import tiny_config
  config = tiny_config("loss.relatedness_signal=transfer_gate",
                       "loss.negatives=in_batch",
                       "loss.contrastive_weight=0.5", "loss.symmetric=false",
                       f"loss.alignment_start={start}")
  batch, schema = synthetic_batch(config, 64)
  model = models.compile_model(models.build_model(config, schema), config,
                               total_steps=total_steps)
  return model, batch


def test_a_delayed_alignment_adds_infonce_from_its_start_step_only():
  """loss.alignment_start=0.25 of 40 steps: the InfoNCE term is 0 on the
  training steps before step 10 and whole from step 10 on; the gate's probe
  (and so the relatedness network's gradient) is there from the first step;
  evaluation always includes the term."""
  from adaftr_tf.losses import info_nce
  model, (features, labels) = _delayed_gate(0.25, 40)
  task = model.alignment_task
  assert task.start_step == 10
  x, _ = model._embed(features)
  outputs = model._predict(x, None, False)
  _, f = task.alignment.temperature(x, outputs[F.H_CTR], outputs[F.H_CVR])
  g = gate.slope(f)
  tau = gate.gate_tau(g, 0.05, 1.0)
  probe = gate.probe_loss(g, outputs[F.CTR_LOGIT], labels[F.CLICK],
                          labels[F.CONVERSION], gate.INITIAL_INTERCEPT)
  u = task.alignment.ctr_projection(outputs[F.H_CTR])
  v = task.alignment.cvr_projection(outputs[F.H_CVR])
  nce = 0.5 * info_nce(u, v, tau)
  assert np.all(nce.numpy() > 0)
  for step, expected in [(0, probe), (9, probe), (10, probe + nce),
                         (39, probe + nce), (None, probe + nce)]:
    loss, _ = task(x, outputs, labels, training=False,
                   step=None if step is None else tf.constant(step, tf.int64))
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-5,
                               err_msg=f"step {step}")
  # Before the start the gate still trains: the relatedness network gets
  # gradient through the whole model's loss at optimizer step 0.
  assert int(model.optimizer.iterations.numpy()) == 0
  with tf.GradientTape() as tape:
    loss = model.compute_loss((features, labels), training=True)
  variables = task.alignment.relatedness.trainable_variables
  grads = tape.gradient(loss, variables)
  assert variables
  assert any(g is not None and np.any(g.numpy()) for g in grads)


def test_a_delayed_alignment_needs_the_number_of_training_steps():
  with pytest.raises(ValueError, match=r"loss\.alignment_start=0\.5 needs "
                     "the run's number of training steps"):
    _delayed_gate(0.5, None)
  model, _ = _delayed_gate(0.0, None)
  assert model.alignment_task.start_step == 0
