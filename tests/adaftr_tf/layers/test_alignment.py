"""Tests of adaftr_tf.layers.alignment: projection heads and temperature of the
alignment block (TaskAlignment)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers.alignment import TaskAlignment
from tests.helpers.layers import BATCH, inputs


def _alignment(**kwargs):
  args = dict(projection_hidden=8, projection_dim=3, relatedness_units=(8,),
              tau_min=0.05, tau_max=1.0, seed=4)
  args.update(kwargs)
  return TaskAlignment(**args)


def _inputs():
  """(embeddings [BATCH, 7], h_ctr [BATCH, 4], h_cvr [BATCH, 4])."""
  return inputs(0), inputs(1)[:, :4], inputs(2, scale=3.0)[:, :4]


def test_unit_projections_and_bounded_tau_from_the_logit():
  layer = _alignment()
  u, v, tau, logit = layer(*_inputs())
  assert u.shape == (BATCH, 3) and v.shape == (BATCH, 3)
  np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1.0, rtol=1e-5)
  assert tau.shape == (BATCH,) and logit.shape == (BATCH,)
  assert np.all((tau.numpy() >= 0.05) & (tau.numpy() <= 1.0))
  np.testing.assert_allclose(
      tau, 0.05 + 0.95 / (1 + np.exp(-logit.numpy())), rtol=1e-5)
  # Two heads, not one: the towers' vectors are projected differently.
  assert not np.allclose(layer.ctr_projection(_inputs()[1]),
                         layer.cvr_projection(_inputs()[1]))


def test_fixed_mode_has_no_relatedness_logit():
  layer = _alignment(relatedness_units=(), tau_min=0.04, tau_max=1.0,
                     temperature_mode="fixed", fixed_tau=0.3)
  _, _, tau, logit = layer(*_inputs())
  assert logit is None
  np.testing.assert_allclose(tau, np.full(BATCH, 0.3), rtol=1e-6)


@pytest.mark.parametrize("kwargs, width, reaches", [
    (dict(), 7, ()),  # embeddings, gradient stopped
    (dict(relatedness_stop_gradient=False), 7, ("embeddings",)),
    (dict(relatedness_input="towers_detached"), 8, ()),
])
def test_what_the_relatedness_network_reads(kwargs, width, reaches):
  layer = _alignment(**kwargs)
  embeddings, h_ctr, h_cvr = _inputs()
  assert layer.relatedness_input(embeddings, h_ctr, h_cvr).shape == (
      BATCH, width)
  with tf.GradientTape() as tape:
    tape.watch([embeddings, h_ctr, h_cvr])
    tau, _ = layer.temperature(embeddings, h_ctr, h_cvr)
    total = tf.reduce_sum(tau)
  grads = dict(zip(("embeddings", "h_ctr", "h_cvr"), tape.gradient(
      total, [embeddings, h_ctr, h_cvr])))
  assert {name for name, g in grads.items() if g is not None} == set(reaches)


def test_config_round_trip():
  layer = _alignment(relatedness_input="towers_detached", seed=7)
  out = layer(*_inputs())
  config = layer.get_config()
  clone = TaskAlignment.from_config(config)
  assert clone.get_config() == config
  clone(*_inputs())
  clone.set_weights(layer.get_weights())
  for a, b in zip(out, clone(*_inputs())):
    np.testing.assert_array_equal(a, b)


def test_an_unknown_relatedness_input_is_refused():
  with pytest.raises(ValueError, match="relatedness_input='labels' is not "
                     "valid"):
    _alignment(relatedness_input="labels")
