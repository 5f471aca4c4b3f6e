"""Tests of adaftr_tf.losses.agreement against independent NumPy references."""

import numpy as np
import tensorflow as tf

from adaftr_tf.losses import per_example_cosine
from adaftr_tf.losses import relatedness_regression_loss
from adaftr_tf.losses.agreement import agreement_target


def test_per_example_cosine_matches_numpy_rows():
  rng = np.random.default_rng(0)
  g1, g2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
  got = per_example_cosine(g1, g2)
  assert got.shape == (6,) and got.dtype == tf.float32
  expected = np.sum(g1 * g2, 1) / (np.linalg.norm(g1, axis=1) *
                                   np.linalg.norm(g2, axis=1))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  np.testing.assert_allclose(per_example_cosine(g1, 3 * g1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(per_example_cosine(g1, -g1), -1.0, rtol=1e-6)


def test_a_zero_gradient_row_has_cosine_zero():
  g1 = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
  g2 = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
  np.testing.assert_array_equal(per_example_cosine(g1, g2), [0.0, 0.0])


def test_agreement_target_maps_the_cosine_to_the_unit_interval():
  np.testing.assert_allclose(agreement_target([-1.0, 0.0, 0.5, 1.0]),
                             [0.0, 0.5, 0.75, 1.0])


def test_relatedness_regression_loss_is_bce_of_the_predicted_agreement():
  cosine = tf.constant([-1.0, -0.2, 0.4, 1.0])
  logit = tf.constant([2.0, 0.0, -1.0, -3.0])
  t = (cosine.numpy() + 1) / 2
  rho_hat = 1 / (1 + np.exp(logit.numpy()))  # sigmoid(-f)
  expected = -(t * np.log(rho_hat) + (1 - t) * np.log(1 - rho_hat))
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([cosine, logit])
    loss = relatedness_regression_loss(cosine, logit)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # The target is fixed (stop-gradient); f moves rho_hat towards it:
  # dL/df = t - sigmoid(-f).
  assert tape.gradient(loss, cosine) is None
  np.testing.assert_allclose(tape.gradient(loss, logit), t - rho_hat,
                             rtol=1e-5, atol=1e-7)
