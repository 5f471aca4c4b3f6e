"""Tests of adaftr_tf.layers.transfer: AITM's attention transfer (AIT) unit."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers.transfer import AttentionTransfer
from tests.helpers.layers import BATCH, inputs


def _pair(dim=4):
  """(h_ctr [BATCH, 7], h_cvr [BATCH, dim])."""
  return inputs(0), inputs(1)[:, :dim]


def _dense(layer, x):
  kernel, bias = [w.numpy() for w in layer.weights]
  return x @ kernel + bias


def test_output_is_the_attention_mixture_of_both_representations():
  layer = AttentionTransfer(4, seed=3)
  h_ctr, h_cvr = _pair()
  z, weights = layer(h_ctr, h_cvr)
  assert z.shape == (BATCH, 4) and weights.shape == (BATCH, 2)
  # Reference: p = relu(transfer(h_ctr)), items (p, q = h_cvr), scaled
  # dot-product attention of query and key, mixture of the values.
  p = np.maximum(_dense(layer._transfer, h_ctr.numpy()), 0)
  items = np.stack([p, h_cvr.numpy()], axis=1)
  scores = np.sum(_dense(layer._h2, items) * _dense(layer._h3, items), -1)
  scores /= np.sqrt(4)
  expected_w = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
  expected_z = np.sum(expected_w[..., None] * _dense(layer._h1, items), 1)
  np.testing.assert_allclose(weights, expected_w, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(z, expected_z, rtol=1e-5, atol=1e-6)
  assert np.all(weights.numpy() >= 0)
  np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, atol=1e-6)


def test_gradient_reaches_the_ctr_representation():
  layer = AttentionTransfer(4, seed=0)
  h_ctr, h_cvr = _pair()
  with tf.GradientTape() as tape:
    tape.watch(h_ctr)
    z, _ = layer(h_ctr, h_cvr)
    loss = tf.reduce_sum(z)
  assert np.any(tape.gradient(loss, h_ctr).numpy() != 0)


def test_config_round_trip():
  layer = AttentionTransfer(4, seed=5)
  h_ctr, h_cvr = _pair()
  out = layer(h_ctr, h_cvr)
  config = layer.get_config()
  assert (config["dim"], config["seed"]) == (4, 5)
  clone = AttentionTransfer.from_config(config)
  assert clone.get_config() == config
  clone(h_ctr, h_cvr)
  clone.set_weights(layer.get_weights())
  for a, b in zip(out, clone(h_ctr, h_cvr)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make,arg", [
    (lambda: AttentionTransfer(0), "dim"),
    (lambda: AttentionTransfer(4, seed=-1), "seed"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()
