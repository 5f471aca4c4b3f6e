"""Tests of adaftr_tf.losses.multitask against independent NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.losses import bce_with_logits
from adaftr_tf.losses import behavioural_calibration
from adaftr_tf.losses import conditional_cvr_logit
from adaftr_tf.losses import ctcvr_bce
from adaftr_tf.losses import ctcvr_log_probs
from adaftr_tf.losses import ctcvr_logit
from adaftr_tf.losses import esmm_loss


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
  # p_ctr = σ(0) = 0.5; p_ctcvr = σ(ln 3) = 0.75 -> penalty 0.25; σ(-ln 3) = 0.25 -> 0.
  penalty = behavioural_calibration(
      tf.constant([0.0, 0.0]),
      tf.constant([np.log(3.0), -np.log(3.0)], tf.float32))
  np.testing.assert_allclose(penalty.numpy(), [0.25, 0.0], atol=1e-6)


def test_conditional_cvr_logit_is_ratio_of_probabilities():
  a = tf.constant([0.0, 2.0, -3.0])
  z = tf.constant([-1.0, 0.5, -6.0])
  p = tf.sigmoid(conditional_cvr_logit(a, z)).numpy()
  expected = (1 / (1 + np.exp(-z.numpy()))) / (1 / (1 + np.exp(-a.numpy())))
  np.testing.assert_allclose(p, expected, rtol=1e-5)
  inconsistent = tf.sigmoid(conditional_cvr_logit(tf.constant([-5.0]),
                                                  tf.constant([5.0]))).numpy()
  assert 0 < inconsistent[0] < 1
