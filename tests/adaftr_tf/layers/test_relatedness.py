"""Tests of adaftr_tf.layers.relatedness: RelatednessNetwork (tau)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers import RelatednessNetwork
from tests.helpers.layers import BATCH, check_config_round_trip, inputs


# (constructor, kwargs, call kwargs) on a [BATCH, IN] input.
CASES = {
    "tau_instance": (RelatednessNetwork, dict(units=(8,), tau_min=0.05,
                                              tau_max=1.0), {}),
    "tau_global": (RelatednessNetwork, dict(units=(), tau_min=0.05,
                                            tau_max=1.0, mode="global"), {}),
    "tau_fixed": (RelatednessNetwork, dict(units=(), tau_min=0.1, tau_max=0.1,
                                           mode="fixed"), {}),
}


def test_relatedness_tau_bounded_for_huge_inputs():
  for mode in ("instance", "global"):
    layer = RelatednessNetwork((8,), 0.05, 1.0, mode=mode, seed=4)
    for scale in (1e6, -1e6, 1.0):
      tau = layer(inputs(scale=scale)).numpy()
      assert tau.shape == (BATCH,) and tau.dtype == np.float32
      assert np.all(tau >= 0.05) and np.all(tau <= 1.0)


def test_relatedness_initial_tau_near_geometric_middle():
  mid = np.sqrt(0.05 * 1.0)
  # Far from either bound (0.05 or 1.0), whatever the random init.
  np.testing.assert_allclose(
      RelatednessNetwork((8,), 0.05, 1.0)(inputs()), mid, rtol=0.3)
  np.testing.assert_allclose(
      RelatednessNetwork((), 0.05, 1.0, mode="global")(inputs()), mid,
      rtol=1e-5)


def test_relatedness_global_same_tau_every_row():
  layer = RelatednessNetwork((8,), 0.05, 1.0, mode="global")
  layer.global_logit.assign(0.7)
  tau = layer(inputs()).numpy()
  np.testing.assert_allclose(tau, 0.05 + 0.95 / (1 + np.exp(-0.7)), rtol=1e-6)
  assert len(layer.trainable_weights) == 1
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(inputs()))
  assert tape.gradient(loss, layer.global_logit) is not None


def test_relatedness_fixed_mode():
  layer = RelatednessNetwork((8,), 0.04, 1.0, mode="fixed")
  np.testing.assert_allclose(layer(inputs()), np.full(BATCH, 0.2), rtol=1e-6)
  assert not layer.trainable_weights and not layer.weights
  given = RelatednessNetwork((), 0.04, 1.0, mode="fixed", fixed_tau=0.5)
  np.testing.assert_allclose(given(inputs()), 0.5)
  with pytest.raises(ValueError, match="mode"):
    given.relatedness_logit(inputs())


def test_relatedness_logit_matches_tau():
  layer = RelatednessNetwork((8,), 0.1, 2.0, seed=2)
  x = inputs()
  f = layer.relatedness_logit(x).numpy()
  assert f.shape == (BATCH,)
  np.testing.assert_allclose(layer(x), 0.1 + 1.9 / (1 + np.exp(-f)),
                             rtol=1e-6)


def test_linear_weights_are_the_linear_networks_kernel_and_bias():
  layer = RelatednessNetwork((), 0.05, 1.0, seed=3)
  x = inputs()
  logit = layer.relatedness_logit(x).numpy()
  kernel, bias = layer.linear_weights()
  assert kernel.shape == (x.shape[1], 1) and bias.shape == (1,)
  np.testing.assert_allclose(logit, (x.numpy() @ kernel.numpy())[:, 0]
                             + bias.numpy()[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units, mode", [((8,), "instance"), ((), "global")])
def test_linear_weights_need_a_linear_instance_network(units, mode):
  layer = RelatednessNetwork(units, 0.05, 1.0, mode=mode)
  layer(inputs())
  with pytest.raises(ValueError, match=r"linear_weights needs a linear "
                     r"relatedness network \(mode 'instance', units \(\)\), "
                     rf"got mode '{mode}'"):
    layer.linear_weights()


def test_tau_decreases_as_predicted_agreement_increases():
  network = RelatednessNetwork((4,), tau_min=0.05, tau_max=1.0)
  logits = tf.constant(np.linspace(-8, 8, 33), tf.float32)
  predicted_agreement = tf.sigmoid(-logits).numpy()  # rho_hat = sigmoid(-f)
  tau = network.tau_from_logit(logits).numpy()
  order = np.argsort(predicted_agreement)
  assert np.all(np.diff(tau[order]) < 0)
  assert tau.min() >= 0.05 and tau.max() <= 1.0


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
  check_config_round_trip(*CASES[case])


@pytest.mark.parametrize("make,arg", [
    (lambda: RelatednessNetwork((4,), 0.1, 1.0, mode="adaptive"), "mode"),
    (lambda: RelatednessNetwork((4,), 0.0, 1.0), "tau_min"),
    (lambda: RelatednessNetwork((4,), 0.1, float("inf")), "tau_max"),
    (lambda: RelatednessNetwork((4,), float("nan"), 1.0), "tau_min"),
    (lambda: RelatednessNetwork((4,), 1.0, 0.5), "tau_max"),
    (lambda: RelatednessNetwork((4,), 0.5, 0.5, mode="global"), "tau_max"),
    (lambda: RelatednessNetwork((), 0.1, 1.0, "fixed", fixed_tau=2.0),
     "fixed_tau"),
    (lambda: RelatednessNetwork((), 0.1, 1.0, "fixed", fixed_tau=-1.0),
     "fixed_tau"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()
