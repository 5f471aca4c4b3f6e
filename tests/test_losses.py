"""Tests of adaftr_tf.losses against independent NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.losses import bce_with_logits
from adaftr_tf.losses import ctcvr_bce
from adaftr_tf.losses import ctcvr_log_probs
from adaftr_tf.losses import ctcvr_logit
from adaftr_tf.losses import esmm_loss
from adaftr_tf.losses import info_nce
from adaftr_tf.losses import random_negative_indices
from adaftr_tf.losses import random_negative_info_nce
from adaftr_tf.losses import symmetric_in_batch_info_nce
from adaftr_tf.losses import symmetric_info_nce


def _unit_rows(rng, n, d):
  x = rng.normal(size=(n, d))
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def np_info_nce(anchors, candidates, tau, pos):
  """Reference InfoNCE in float64 with an explicit log-sum-exp."""
  logits = (anchors.astype(np.float64) @ candidates.astype(np.float64).T /
            tau.astype(np.float64)[:, None])
  m = logits.max(axis=1, keepdims=True)
  lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
  return lse - logits[np.arange(len(anchors)), pos]


def np_info_nce_grad_anchors(anchors, candidates, tau, pos):
  """d loss_i / d anchors_i = (sum_j softmax_ij c_j - c_{p_i}) / tau_i."""
  logits = anchors.astype(np.float64) @ candidates.T / tau[:, None]
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  return (p @ candidates - candidates[pos]) / tau[:, None]


# ---------------------------------------------------------------- InfoNCE


def test_info_nce_hand_checked_2x2():
  eye = tf.eye(2)
  np.testing.assert_allclose(info_nce(eye, eye, tf.ones([2])),
                             [0.3132616875182228] * 2, rtol=1e-6)
  # tau = 0.5: -log(e^2 / (e^2 + 1)).
  np.testing.assert_allclose(info_nce(eye, eye, tf.fill([2], 0.5)),
                             [0.12692801104297238] * 2, rtol=1e-6)


def test_info_nce_hand_checked_extra_candidates():
  # s = [1, 0, -1], positive first: -log(e / (e + 1 + 1/e)).
  loss = info_nce([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], [1.0],
                  positive_index=[0])
  np.testing.assert_allclose(loss, [0.40760596444438035], rtol=1e-6)


@pytest.mark.parametrize("b,n,d,custom", [(6, 6, 4, False), (5, 9, 3, False),
                                          (4, 11, 5, True)])
def test_info_nce_matches_numpy(b, n, d, custom):
  rng = np.random.default_rng(b + n)
  a, c = _unit_rows(rng, b, d), _unit_rows(rng, n, d)
  tau = rng.uniform(0.05, 1.0, size=b).astype(np.float32)
  pos = rng.integers(0, n, size=b) if custom else np.arange(b)
  got = info_nce(a, c, tau, tf.constant(pos, tf.int32) if custom else None)
  assert got.shape == (b,) and got.dtype == tf.float32
  np.testing.assert_allclose(got, np_info_nce(a, c, tau, pos), rtol=1e-5,
                             atol=1e-6)


def test_info_nce_default_positive_needs_enough_candidates():
  with pytest.raises(ValueError, match="n >= "):
    info_nce(tf.ones([4, 2]), tf.ones([3, 2]), tf.ones([4]))


@pytest.mark.parametrize("tau,scale", [(1e-4, 1.0), (1.0, 1e4), (1e-4, 1e4)])
def test_info_nce_finite_at_extremes(tau, scale):
  rng = np.random.default_rng(0)
  a = tf.constant(_unit_rows(rng, 8, 4) * scale)
  c = tf.constant(_unit_rows(rng, 8, 4) * scale)
  taus = tf.fill([8], tau)
  with tf.GradientTape() as tape:
    tape.watch([a, c, taus])
    loss = info_nce(a, c, taus)
  grads = tape.gradient(loss, [a, c, taus])
  assert np.all(np.isfinite(loss)) and np.all(loss.numpy() >= 0)
  for g in grads:
    assert np.all(np.isfinite(g))


def test_info_nce_gradient_matches_analytic():
  rng = np.random.default_rng(1)
  a, c = _unit_rows(rng, 5, 4), _unit_rows(rng, 7, 4)
  tau = rng.uniform(0.1, 1.0, size=5).astype(np.float32)
  pos = np.array([6, 0, 3, 3, 1])
  at = tf.constant(a)
  with tf.GradientTape() as tape:
    tape.watch(at)
    loss = tf.reduce_sum(info_nce(at, c, tau, pos))
  np.testing.assert_allclose(tape.gradient(loss, at),
                             np_info_nce_grad_anchors(a, c, tau, pos),
                             rtol=1e-4, atol=1e-5)


def test_info_nce_higher_positive_similarity_lower_loss():
  rng = np.random.default_rng(2)
  a, c = _unit_rows(rng, 6, 4), _unit_rows(rng, 6, 4)
  tau = np.full(6, 0.2, np.float32)
  at = tf.constant(a)
  with tf.GradientTape() as tape:
    tape.watch(at)
    loss = tf.reduce_sum(info_nce(at, c, tau))
  grad = tape.gradient(loss, at).numpy()
  # The derivative along the positive's direction is negative ...
  assert np.all(np.sum(grad * c, axis=1) < 0)
  # ... and a step towards each positive lowers every loss.
  moved = a + 0.1 * c
  moved /= np.linalg.norm(moved, axis=1, keepdims=True)
  assert np.all(info_nce(moved, c, tau).numpy() < info_nce(a, c, tau).numpy())


def test_symmetric_info_nce_is_average_of_directions():
  rng = np.random.default_rng(3)
  u, v = _unit_rows(rng, 5, 3), _unit_rows(rng, 5, 3)
  tau = rng.uniform(0.1, 1.0, size=5).astype(np.float32)
  expected = 0.5 * (np_info_nce(u, v, tau, np.arange(5)) +
                    np_info_nce(v, u, tau, np.arange(5)))
  np.testing.assert_allclose(symmetric_info_nce(u, v, v, u, tau), expected,
                             rtol=1e-5)
  # Gathered candidates with offset positives (the tf.distribute layout).
  uc = np.concatenate([_unit_rows(rng, 3, 3), u])
  vc = np.concatenate([_unit_rows(rng, 3, 3), v])
  pos = np.arange(5) + 3
  np.testing.assert_allclose(
      symmetric_info_nce(u, vc, v, uc, tau, tf.constant(pos, tf.int32)),
      0.5 * (np_info_nce(u, vc, tau, pos) + np_info_nce(v, uc, tau, pos)),
      rtol=1e-5)


@pytest.mark.parametrize("tau_low", [1e-3, 0.05])
def test_fused_in_batch_info_nce_equals_two_directions(tau_low):
  """One shared u v^T gives the two-matmul loss and the same gradients."""
  rng = np.random.default_rng(4)
  u = tf.Variable(_unit_rows(rng, 16, 4))
  v = tf.Variable(_unit_rows(rng, 16, 4))
  tau = tf.Variable(rng.uniform(tau_low, 1.0, 16).astype(np.float32))
  weights = tf.range(1.0, 17.0)   # distinct per-example weights

  def loss_and_grads(fn):
    with tf.GradientTape() as tape:
      loss = fn(u, v, tau)
      total = tf.reduce_sum(loss * weights)
    return [loss] + tape.gradient(total, [u, v, tau])

  fused = loss_and_grads(symmetric_in_batch_info_nce)
  unfused = loss_and_grads(lambda a, b, t: symmetric_info_nce(a, b, b, a, t))
  np.testing.assert_allclose(
      fused[0], 0.5 * (np_info_nce(u.numpy(), v.numpy(), tau.numpy(),
                                   np.arange(16)) +
                       np_info_nce(v.numpy(), u.numpy(), tau.numpy(),
                                   np.arange(16))), rtol=1e-4)
  for a, b in zip(fused, unfused):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=1e-5)
  with pytest.raises(ValueError, match="rank 2"):
    symmetric_in_batch_info_nce(u[0], v, tau)


# ------------------------------------------------------- random negatives


@pytest.mark.parametrize("b", [2, 3, 7, 64])
def test_random_negative_indices_never_self(b):
  for seed in range(20):
    j = random_negative_indices(b, seed).numpy()
    assert j.shape == (b,) and np.all(j != np.arange(b))
    assert np.all((j >= 0) & (j < b))
  np.testing.assert_array_equal(random_negative_indices(b, 5),
                                random_negative_indices(b, 5))


def test_random_negative_indices_vary_with_seed():
  draws = {tuple(random_negative_indices(16, s).numpy()) for s in range(5)}
  assert len(draws) > 1


def test_random_negative_indices_accept_seed_pair():
  step = tf.constant(3, tf.int64)
  j = random_negative_indices(8, (7, step)).numpy()
  assert np.all(j != np.arange(8))
  np.testing.assert_array_equal(j, random_negative_indices(8, [7, 3]))
  np.testing.assert_array_equal(random_negative_indices(8, 7),
                                random_negative_indices(8, (7, 0)))
  with pytest.raises(ValueError, match="seed"):
    random_negative_indices(8, (1, 2, 3))


def test_random_negative_info_nce_is_two_way_softmax():
  rng = np.random.default_rng(4)
  a, c = _unit_rows(rng, 9, 4), _unit_rows(rng, 9, 4)
  tau = rng.uniform(0.05, 1.0, size=9).astype(np.float32)
  j = random_negative_indices(9, 11).numpy()
  pos = np.sum(a * c, 1) / tau
  neg = np.sum(a * c[j], 1) / tau
  expected = -np.log(np.exp(pos) / (np.exp(pos) + np.exp(neg)))
  got = random_negative_info_nce(a, c, tau, seed=11)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got, random_negative_info_nce(a, c, tau, 11))
  tiny = random_negative_info_nce(a * 1e4, c, np.full(9, 1e-4, np.float32), 11)
  assert np.all(np.isfinite(tiny))


# ------------------------------------------------------------ multitask


def _sig(x):
  return 1.0 / (1.0 + np.exp(-x))


def _grid():
  vals = np.linspace(-8.0, 8.0, 9)
  a, b = np.meshgrid(vals, vals)
  return a.ravel(), b.ravel()


def test_bce_with_logits_matches_numpy():
  z = np.array([-3.0, -0.5, 0.0, 2.0], np.float32)
  y = np.array([1, 0, 1, 0], np.int64)
  p = _sig(z.astype(np.float64))
  np.testing.assert_allclose(bce_with_logits(y, z),
                             -(y * np.log(p) + (1 - y) * np.log(1 - p)),
                             rtol=1e-6)


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_ctcvr_bce_matches_naive_float64(label):
  a, b = _grid()
  p = _sig(a) * _sig(b)
  y = np.full_like(a, label)
  naive = -(y * np.log(p) + (1 - y) * np.log(1 - p))
  got = ctcvr_bce(y.astype(np.float32), a.astype(np.float32),
                  b.astype(np.float32))
  assert got.dtype == tf.float32
  np.testing.assert_allclose(got, naive, rtol=1e-5, atol=1e-5)


def test_ctcvr_log_probs_and_logit_match_probabilities():
  a, b = _grid()
  p = _sig(a) * _sig(b)
  log_p, log_1mp = ctcvr_log_probs(a.astype(np.float32), b.astype(np.float32))
  np.testing.assert_allclose(log_p, np.log(p), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_1mp, np.log1p(-p), rtol=1e-4, atol=1e-6)
  z = ctcvr_logit(a.astype(np.float32), b.astype(np.float32))
  np.testing.assert_allclose(tf.sigmoid(z), p, rtol=1e-5, atol=1e-7)


def test_ctcvr_logit_bce_equals_ctcvr_bce():
  a, b = [x.astype(np.float32) for x in _grid()]
  y = (np.arange(len(a)) % 2).astype(np.float32)
  np.testing.assert_allclose(bce_with_logits(y, ctcvr_logit(a, b)),
                             ctcvr_bce(y, a, b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mag", [80.0, 1e4])
def test_ctcvr_finite_at_extreme_logits(mag):
  signs = np.array([(1, 1), (1, -1), (-1, 1), (-1, -1)], np.float32)
  a = tf.constant(np.repeat(signs[:, 0], 2) * mag)
  b = tf.constant(np.repeat(signs[:, 1], 2) * mag)
  y = tf.constant(np.tile([0.0, 1.0], 4), tf.float32)
  with tf.GradientTape() as tape:
    tape.watch([a, b])
    losses = [ctcvr_bce(y, a, b), ctcvr_logit(a, b), esmm_loss(y, y, a, b)]
    total = tf.add_n([tf.reduce_sum(l) for l in losses])
  for value in losses + tape.gradient(total, [a, b]):
    assert np.all(np.isfinite(value))
  # Asymptotics: a = b = +mag, y = 0: 1 - p ~ 2 exp(-mag); y = 1: the loss is
  # softplus(-a) + softplus(-b) exactly (here about 2 * mag for a = b = -mag).
  bce = ctcvr_bce(y, a, b).numpy()
  np.testing.assert_allclose(bce[0], mag - np.log(2.0), rtol=1e-6)
  np.testing.assert_allclose(bce[7], 2 * mag, rtol=1e-6)


def test_ctcvr_bce_gradient_matches_analytic():
  a = np.array([-2.0, 0.5, 3.0, -1.0], np.float32)
  b = np.array([1.0, -0.5, 2.0, 4.0], np.float32)
  y = np.array([1.0, 1.0, 0.0, 0.0], np.float32)
  at = tf.constant(a)
  with tf.GradientTape() as tape:
    tape.watch(at)
    loss = tf.reduce_sum(ctcvr_bce(y, at, b))
  sa, sb = _sig(a.astype(np.float64)), _sig(b.astype(np.float64))
  # y = 1: d(-log sa sb)/da = -(1 - sa); y = 0: sa (1 - sa) sb / (1 - sa sb).
  expected = np.where(y == 1, -(1 - sa), sa * (1 - sa) * sb / (1 - sa * sb))
  np.testing.assert_allclose(tape.gradient(loss, at), expected, rtol=1e-5)


def test_esmm_loss_is_sum_of_parts():
  rng = np.random.default_rng(5)
  a, b = [rng.normal(size=16).astype(np.float32) * 3 for _ in range(2)]
  click = rng.integers(0, 2, size=16)
  conv = click * rng.integers(0, 2, size=16)
  np.testing.assert_allclose(
      esmm_loss(click, conv, a, b),
      bce_with_logits(click, a) + ctcvr_bce(conv, a, b), rtol=1e-6)


def test_behavioural_calibration_hand_values():
  from adaftr_tf.losses import behavioural_calibration
  # p_ctr = σ(0) = 0.5; p_ctcvr = σ(ln 3) = 0.75 -> penalty 0.25; σ(-ln 3) = 0.25 -> 0.
  penalty = behavioural_calibration(
      tf.constant([0.0, 0.0]),
      tf.constant([np.log(3.0), -np.log(3.0)], tf.float32))
  np.testing.assert_allclose(penalty.numpy(), [0.25, 0.0], atol=1e-6)


def test_conditional_cvr_logit_is_ratio_of_probabilities():
  from adaftr_tf.losses import conditional_cvr_logit
  a = tf.constant([0.0, 2.0, -3.0])
  z = tf.constant([-1.0, 0.5, -6.0])
  p = tf.sigmoid(conditional_cvr_logit(a, z)).numpy()
  expected = (1 / (1 + np.exp(-z.numpy()))) / (1 / (1 + np.exp(-a.numpy())))
  np.testing.assert_allclose(p, expected, rtol=1e-5)
  inconsistent = tf.sigmoid(conditional_cvr_logit(tf.constant([-5.0]),
                                                  tf.constant([5.0]))).numpy()
  assert 0 < inconsistent[0] < 1


@pytest.mark.parametrize("run", ["eager", "graph"])
def test_contrastive_task_in_batch_loss_equals_the_two_directions(run):
  """ContrastiveTask's XLA-compiled, fused local loss: same values and
  gradients as the two-matmul symmetric InfoNCE, eagerly and in a graph."""
  from adaftr_tf.tasks import ContrastiveTask
  rng = np.random.default_rng(5)
  u = tf.Variable(_unit_rows(rng, 32, 8))
  v = tf.Variable(_unit_rows(rng, 32, 8))
  tau = tf.Variable(rng.uniform(0.02, 1.0, 32).astype(np.float32))
  weights = tf.range(1.0, 33.0)

  def loss_and_grads(fn):
    with tf.GradientTape() as tape:
      loss = fn(u, v, tau)
      total = tf.reduce_sum(loss * weights)
    return [loss] + tape.gradient(total, [u, v, tau])

  task = ContrastiveTask(symmetric=True)
  measured = (tf.function(loss_and_grads) if run == "graph"
              else loss_and_grads)(task)
  expected = loss_and_grads(lambda a, b, t: symmetric_info_nce(a, b, b, a, t))
  for a, b in zip(measured, expected):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=1e-5)
  assert float(task.loss_tracker.result()) == pytest.approx(
      float(tf.reduce_mean(expected[0])), rel=1e-5)
