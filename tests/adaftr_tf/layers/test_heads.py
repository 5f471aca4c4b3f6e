"""Tests of adaftr_tf.layers.heads: the task towers in the ESMM and AITM
layouts and the three logits."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers.heads import TaskHeads
from tests.helpers.layers import BATCH, inputs


def _sigmoid(x):
  return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def test_esmm_layout_ctcvr_is_the_product_of_the_towers():
  heads = TaskHeads((8, 4), seed=1)
  ctr_in, cvr_in = inputs(0), inputs(1)
  (a, b, z), (h_ctr, h_cvr) = heads(ctr_in, cvr_in)
  for logit in (a, b, z):
    assert logit.shape == (BATCH,) and logit.dtype == tf.float32
  assert h_ctr.shape == (BATCH, 4) and h_cvr.shape == (BATCH, 4)
  assert heads.ait is None
  np.testing.assert_allclose(_sigmoid(z), _sigmoid(a) * _sigmoid(b),
                             rtol=1e-5)
  # Each tower reads its own input.
  np.testing.assert_allclose(a, heads.ctr_tower(ctr_in)[0], rtol=1e-6)
  np.testing.assert_allclose(b, heads.cvr_tower(cvr_in)[0], rtol=1e-6)


def test_aitm_layout_predicts_ctcvr_and_implies_the_cvr():
  heads = TaskHeads((8, 4), transfer=True, seed=2)
  ctr_in, cvr_in = inputs(0), inputs(1)
  (a, b, z), (h_ctr, h_cvr) = heads(ctr_in, cvr_in)
  assert heads.ait is not None and h_cvr.shape == (BATCH, 4)
  # z is read from the transferred representation, b is implied by a and z.
  np.testing.assert_allclose(z, heads.cvr_tower.logit(h_cvr), rtol=1e-6)
  p_ctr, p_ctcvr = _sigmoid(a), _sigmoid(z)
  consistent = p_ctcvr <= p_ctr
  assert consistent.any()
  np.testing.assert_allclose(_sigmoid(b)[consistent],
                             (p_ctcvr / p_ctr)[consistent], rtol=1e-4)
  # The transfer changes the CVR representation: not the tower's own.
  assert not np.allclose(h_cvr, heads.cvr_tower.hidden(cvr_in))


def test_click_gate_adds_a_gated_stop_gradient_ctr_logit():
  heads = TaskHeads((8, 4), seed=4, click_gate=True)
  ctr_in, cvr_in = inputs(0), inputs(1)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(ctr_in)
    (a, b, z), (h_ctr, h_cvr) = heads(ctr_in, cvr_in)
  # b = tower logit + softplus(w . h_cvr + c) * a, computed directly.
  kernel, bias = (w.numpy() for w in heads.gate.weights)
  g = np.log1p(np.exp(np.asarray(h_cvr) @ kernel[:, 0] + bias[0]))
  tower_b = heads.cvr_tower(cvr_in)[0]
  np.testing.assert_allclose(b, tower_b + g * np.asarray(a), rtol=1e-5,
                             atol=1e-6)
  assert g.std() > 0   # instance-specific
  np.testing.assert_allclose(_sigmoid(z), _sigmoid(a) * _sigmoid(b),
                             rtol=1e-5)
  # The CTR logit enters the CVR logit behind a stop-gradient.
  assert tape.gradient(b, ctr_in) is None
  assert tape.gradient(a, ctr_in) is not None


def test_click_gate_needs_the_esmm_layout():
  with pytest.raises(ValueError, match="click_gate"):
    TaskHeads((4,), transfer=True, click_gate=True)


@pytest.mark.parametrize("transfer,click_gate", [(False, False), (True, False),
                                                 (False, True)])
def test_config_round_trip(transfer, click_gate):
  heads = TaskHeads((8, 4), dropout=0.1, transfer=transfer, seed=3,
                    click_gate=click_gate)
  ctr_in, cvr_in = inputs(0), inputs(1)
  logits, hidden = heads(ctr_in, cvr_in)
  config = heads.get_config()
  clone = TaskHeads.from_config(config)
  assert clone.get_config() == config
  clone(ctr_in, cvr_in)
  clone.set_weights(heads.get_weights())
  again_logits, again_hidden = clone(ctr_in, cvr_in)
  for x, y in zip((*logits, *hidden), (*again_logits, *again_hidden)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make,arg", [
    (lambda: TaskHeads(()), "tower_units"),
    (lambda: TaskHeads((4,), dropout=1.0), "dropout"),
    (lambda: TaskHeads((4,), seed=-1), "seed"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()
