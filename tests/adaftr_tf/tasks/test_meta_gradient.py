"""Tests of adaftr_tf/tasks/meta_gradient.py and its use by the alignment
objective (relatedness_signal=meta_gradient): the hypergradient against a
slow direct computation with per-instance parameter gradients, its reach
(the relatedness network only), training."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.losses import bce_with_logits
from adaftr_tf.losses import info_nce
from adaftr_tf.tasks import meta_gradient as mg
from tests.helpers.data import synthetic_batch
from tests.helpers.data import tiny_config

ROWS = 32   # 16 meta rows, 16 alignment rows


def _model(*items, rows=ROWS):
  config = tiny_config("loss.relatedness_signal=meta_gradient",
                       "loss.negatives=in_batch",
                       "loss.contrastive_weight=0.5",
                       "loss.relatedness_loss_weight=2.0", *items)
  (features, labels), schema = synthetic_batch(config, rows)
  model = models.build_model(config, schema)
  model(features, training=False)   # creates every variable
  return model, features, labels


def _flat(grads, variables):
  return np.concatenate([
      np.zeros(v.shape.num_elements(), np.float64) if g is None
      else tf.convert_to_tensor(g).numpy().astype(np.float64).ravel()
      for g, v in zip(grads, variables)])


def _direct(model, features, labels):
  """(M, dR/dphi) the slow way: s from the meta rows' CVR BCE, then
  s . grad_theta l_i for each alignment row i separately (symmetric
  InfoNCE among the alignment rows, averaged), summed; dR/dphi by
  differentiating s . grad_theta L_cl with respect to phi through tau."""
  task = model.alignment_task
  theta = model.shared_variables
  phi = task.alignment.relatedness.trainable_variables
  half = ROWS // 2
  click = labels[F.CLICK][:half]
  with tf.GradientTape() as tape:
    x, _ = model._embed(features)
    b = model._predict(x, None, True)[F.CVR_LOGIT][:half]
    held_out = tf.reduce_sum(click * bce_with_logits(
        labels[F.CONVERSION][:half], b)) / tf.reduce_sum(click)
  s = _flat(tape.gradient(held_out, theta), theta)

  def alignment_losses(tau=None):
    x, _ = model._embed(features)
    outputs = model._predict(x, None, True)
    if tau is None:
      tau = task.alignment.temperature(x, outputs[F.H_CTR],
                                       outputs[F.H_CVR])[0][half:]
    u = task.alignment.ctr_projection(outputs[F.H_CTR][half:])
    v = task.alignment.cvr_projection(outputs[F.H_CVR][half:])
    return 0.5 * (info_nce(u, v, tau) + info_nce(v, u, tau)) / half

  inner_products = []
  for i in range(half):
    with tf.GradientTape() as tape:
      loss_i = alignment_losses()[i]
    inner_products.append(s @ _flat(tape.gradient(loss_i, theta), theta))
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      total = tf.reduce_sum(alignment_losses())
    grads = inner.gradient(total, theta)
    s_pairs = [tf.constant(part, tf.float32) for part in np.split(
        s, np.cumsum([v.shape.num_elements() for v in theta])[:-1])]
    value = tf.add_n([tf.reduce_sum(tf.reshape(p, [-1]) * tf.reshape(
        tf.convert_to_tensor(g), [-1])) for p, g in zip(s_pairs, grads)
                      if g is not None])
    regret = -2.0 * 0.5 * value   # -regression_weight * lambda * M
  return float(np.sum(inner_products)), outer.gradient(regret, phi)


def test_the_hypergradient_and_its_phi_gradient_equal_the_direct_ones():
  model, features, labels = _model()
  half = ROWS // 2
  assert labels[F.CONVERSION][:half].numpy().sum() >= 1   # s is not zero
  task = model.alignment_task
  phi = task.alignment.relatedness.trainable_variables
  with tf.GradientTape() as tape:
    with mg.recording() as record:
      x, _ = model._embed(features)
      outputs = model._predict(x, None, True)
    record.variables = model.shared_variables
    tau, _ = task.alignment.temperature(x, outputs[F.H_CTR], outputs[F.H_CVR])
    regret = task._meta_loss(record, outputs, labels, tau, step=None)
    mean = tf.reduce_mean(regret)
  value = task.meta_tracker.result().numpy()
  expected_value, expected_grads = _direct(model, features, labels)
  assert abs(value) > 1e-6
  np.testing.assert_allclose(value, expected_value, rtol=2e-3, atol=1e-7)
  np.testing.assert_allclose(regret.numpy(), -2.0 * 0.5 * value, rtol=1e-6)
  assert regret.shape == [ROWS]
  grads = tape.gradient(mean, phi + model.shared_variables)
  for got, want in zip(grads[:len(phi)], expected_grads):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-3,
                               atol=1e-6 * np.abs(want.numpy()).max())
  # Minimised over phi only: nothing reaches the shared parameters.
  assert all(g is None for g in grads[len(phi):])


def test_one_way_alignment_counts_the_cvr_side_only():
  """With the CTR side behind a stop-gradient the alignment gradient has no
  h_ctr term: M is the h_cvr term alone."""
  model, features, labels = _model("loss.one_way=true")
  task = model.alignment_task
  with mg.recording() as record:
    x, _ = model._embed(features)
    outputs = model._predict(x, None, True)
  record.variables = model.shared_variables
  half = ROWS // 2
  rows = mg.meta_rows(ROWS)
  h = [outputs[F.H_CTR], outputs[F.H_CVR]]
  dh = mg.tangents(record, lambda: mg.meta_loss(
      outputs[F.CVR_LOGIT], labels[F.CLICK], labels[F.CONVERSION], rows), h)
  tau = tf.fill([half], 0.3)

  def loss(h_ctr, h_cvr, tau, one_way):
    if one_way:
      h_ctr = tf.stop_gradient(h_ctr)
    u = task.alignment.ctr_projection(h_ctr)
    v = task.alignment.cvr_projection(h_cvr)
    return tf.reduce_mean(0.5 * (info_nce(u, v, tau) + info_nce(v, u, tau)))

  both, _ = mg.hypergradient(lambda *a: loss(*a, False),
                             [t[half:] for t in h], [d[half:] for d in dh],
                             tau)
  cvr_only, _ = mg.hypergradient(lambda *a: loss(*a, True),
                                 [t[half:] for t in h],
                                 [d[half:] for d in dh], tau)
  ctr_only, _ = mg.hypergradient(lambda *a: loss(*a, False),
                                 [t[half:] for t in h],
                                 [tf.zeros_like(dh[0][half:]),
                                  dh[1][half:]], tau)
  np.testing.assert_allclose(cvr_only.numpy(), ctr_only.numpy(), rtol=1e-5)
  assert abs(both.numpy() - cvr_only.numpy()) > 1e-7


def test_the_tangents_are_the_forward_mode_derivative_of_the_representations():
  """J s by the double backward equals forward-mode differentiation of a
  second forward pass along s (tf.autodiff.ForwardAccumulator)."""
  model, features, labels = _model()
  rows = mg.meta_rows(ROWS)
  with mg.recording() as record:
    x, _ = model._embed(features)
    outputs = model._predict(x, None, True)
  record.variables = theta = model.shared_variables
  h = [outputs[F.H_CTR], outputs[F.H_CVR]]
  dh = mg.tangents(record, lambda: mg.meta_loss(
      outputs[F.CVR_LOGIT], labels[F.CLICK], labels[F.CONVERSION], rows), h)
  with tf.GradientTape() as tape:
    x, _ = model._embed(features)
    loss = mg.meta_loss(model._predict(x, None, True)[F.CVR_LOGIT],
                        labels[F.CLICK], labels[F.CONVERSION], rows)
  s = [tf.convert_to_tensor(g) if g is not None else tf.zeros_like(v)
       for g, v in zip(tape.gradient(loss, theta), theta)]
  with tf.autodiff.ForwardAccumulator(theta, s) as accumulator:
    x, _ = model._embed(features)
    again = model._predict(x, None, True)
  for got, key in zip(dh, (F.H_CTR, F.H_CVR)):
    want = accumulator.jvp(again[key]).numpy()
    assert np.abs(want).max() > 1e-4
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())


def test_no_meta_rows_clicked_gives_no_signal():
  model, features, labels = _model()
  labels = {**labels, F.CLICK: tf.zeros_like(labels[F.CLICK]),
            F.CONVERSION: tf.zeros_like(labels[F.CONVERSION])}
  with mg.recording() as record:
    x, _ = model._embed(features)
    outputs = model._predict(x, None, True)
  record.variables = model.shared_variables
  tau, _ = model.alignment_task.alignment.temperature(
      x, outputs[F.H_CTR], outputs[F.H_CVR])
  regret = model.alignment_task._meta_loss(record, outputs, labels, tau, None)
  assert np.all(regret.numpy() == 0.0)


@pytest.mark.slow  # traces the meta step in a graph (~8 CPU-s)
def test_every_k_steps_the_signal_runs_on_the_divisible_steps_only():
  """loss.meta_gradient_every=2, in a graph (tf.cond): step 4 gives the
  every-step value and trains tau's network, step 3 gives 0."""
  model, features, labels = _model("loss.meta_gradient_every=2")
  task = model.alignment_task
  phi = task.alignment.relatedness.trainable_variables

  @tf.function
  def regret(step):
    with tf.GradientTape() as tape:
      with mg.recording() as record:
        x, _ = model._embed(features)
        outputs = model._predict(x, None, True)
      record.variables = model.shared_variables
      tau, _ = task.alignment.temperature(x, outputs[F.H_CTR],
                                          outputs[F.H_CVR])
      scheduled = task._every_meta_step(record, outputs, labels, tau, step)
      mean = tf.reduce_mean(scheduled)
    every = task._meta_loss(record, outputs, labels, tau, step)
    return scheduled, every, tape.gradient(mean, phi)

  on, every, grads = regret(tf.constant(4, tf.int64))
  np.testing.assert_allclose(on.numpy(), every.numpy(), rtol=1e-6)
  assert np.any(on.numpy() != 0)
  assert all(np.any(g.numpy() != 0) for g in grads)
  off, _, grads = regret(tf.constant(3, tf.int64))
  assert np.all(off.numpy() == 0)
  assert all(np.all(g.numpy() == 0) for g in grads)


def test_surrogate_has_the_value_and_the_gradient_through_tau_only():
  tau = tf.Variable([0.2, 0.5, 0.9])
  value = tf.Variable(3.0)
  with tf.GradientTape() as tape:
    out = mg.surrogate(value * 1.0, tf.constant([1.0, -2.0, 0.5]), tau * 1.0)
  assert out.numpy() == pytest.approx(3.0)
  grad_tau, grad_value = tape.gradient(out, [tau, value])
  np.testing.assert_allclose(grad_tau.numpy(), [1.0, -2.0, 0.5])
  assert grad_value is None


def test_meta_rows_and_meta_loss():
  np.testing.assert_array_equal(mg.meta_rows(5).numpy(), [1, 1, 0, 0, 0])
  logits = tf.constant([0.3, -1.0, 2.0, 0.0])
  click = tf.constant([1.0, 0.0, 1.0, 1.0])
  conversion = tf.constant([1.0, 0.0, 0.0, 1.0])
  rows = mg.meta_rows(4)   # rows 0, 1: one clicked meta row
  expected = np.log1p(np.exp(-0.3))
  assert float(mg.meta_loss(logits, click, conversion, rows)) == (
      pytest.approx(expected, rel=1e-6))
  assert float(mg.meta_loss(logits, tf.zeros(4), conversion, rows)) == 0.0


@pytest.mark.slow  # traces the meta train step and the test step (~20 s)
def test_training_moves_tau_and_reports_the_inner_product():
  """A few Keras fit steps: finite losses, the metric, tau's network moved
  (and only through the meta loss: InfoNCE sees a stop-gradient tau); no
  meta computation in evaluation."""
  from tests.helpers.data import in_memory_dataset
  from tests.helpers.data import synthetic_columns
  config = tiny_config("loss.relatedness_signal=meta_gradient",
                       "model.backbone=shared_embedding",
                       "train.steps_per_execution=1")
  columns, schema = synthetic_columns(config, 512)
  train = in_memory_dataset(columns, schema, 128, training=True)
  model = models.compile_model(models.build_model(config, schema), config)
  model(next(iter(train))[0], training=False)
  phi = model.alignment_task.alignment.relatedness.trainable_variables
  before = [v.numpy().copy() for v in phi]
  history = model.fit(train, validation_data=train, epochs=1, verbose=0)
  logs = {k: v[-1] for k, v in history.history.items()}
  assert np.isfinite(logs["loss"]) and np.isfinite(logs["val_loss"])
  assert logs["meta_inner_product"] != 0.0
  assert logs["val_meta_inner_product"] == 0.0   # not measured in evaluation
  assert any(np.abs(v.numpy() - b).max() > 0 for v, b in zip(phi, before))
  tau = model(next(iter(train))[0], training=False)[F.TAU].numpy()
  assert np.all((tau >= 0.05) & (tau <= 1.0))
