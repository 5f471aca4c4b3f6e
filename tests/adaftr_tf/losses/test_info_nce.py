"""Tests of adaftr_tf.losses.info_nce against independent NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.losses import info_nce
from adaftr_tf.losses import random_negative_indices
from adaftr_tf.losses import random_negative_info_nce
from adaftr_tf.losses import symmetric_in_batch_info_nce
from adaftr_tf.losses import symmetric_info_nce
from tests.helpers.numeric import unit_rows


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
  a, c = unit_rows(rng, b, d), unit_rows(rng, n, d)
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
  a = tf.constant(unit_rows(rng, 8, 4) * scale)
  c = tf.constant(unit_rows(rng, 8, 4) * scale)
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
  a, c = unit_rows(rng, 5, 4), unit_rows(rng, 7, 4)
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
  a, c = unit_rows(rng, 6, 4), unit_rows(rng, 6, 4)
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
  u, v = unit_rows(rng, 5, 3), unit_rows(rng, 5, 3)
  tau = rng.uniform(0.1, 1.0, size=5).astype(np.float32)
  expected = 0.5 * (np_info_nce(u, v, tau, np.arange(5)) +
                    np_info_nce(v, u, tau, np.arange(5)))
  np.testing.assert_allclose(symmetric_info_nce(u, v, v, u, tau), expected,
                             rtol=1e-5)
  # Gathered candidates with offset positives (the tf.distribute layout).
  uc = np.concatenate([unit_rows(rng, 3, 3), u])
  vc = np.concatenate([unit_rows(rng, 3, 3), v])
  pos = np.arange(5) + 3
  np.testing.assert_allclose(
      symmetric_info_nce(u, vc, v, uc, tau, tf.constant(pos, tf.int32)),
      0.5 * (np_info_nce(u, vc, tau, pos) + np_info_nce(v, uc, tau, pos)),
      rtol=1e-5)


@pytest.mark.parametrize("tau_low", [1e-3, 0.05])
def test_fused_in_batch_info_nce_equals_two_directions(tau_low):
  """One shared u v^T gives the two-matmul loss and the same gradients."""
  rng = np.random.default_rng(4)
  u = tf.Variable(unit_rows(rng, 16, 4))
  v = tf.Variable(unit_rows(rng, 16, 4))
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
  a, c = unit_rows(rng, 9, 4), unit_rows(rng, 9, 4)
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
