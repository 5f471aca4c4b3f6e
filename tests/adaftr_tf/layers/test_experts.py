"""Tests of adaftr_tf.layers.experts: SharedBottom, MMoE and PLE."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers import MMoE
from adaftr_tf.layers import PLE
from adaftr_tf.layers import SharedBottom
from tests.helpers.layers import BATCH, check_config_round_trip, inputs


# (constructor, kwargs, call kwargs) on a [BATCH, IN] input.
CASES = {
    "shared_bottom": (SharedBottom, dict(units=(8, 6), num_tasks=3), {}),
    "mmoe": (MMoE, dict(num_experts=3, expert_units=(8, 6), dropout=0.1), {}),
    "ple": (PLE, dict(num_levels=2, num_shared_experts=2, num_task_experts=1,
                      expert_units=(8, 6)), {}),
}


@pytest.mark.parametrize("num_tasks", [1, 3])
def test_shared_bottom_outputs(num_tasks):
  outs = SharedBottom((8, 6), num_tasks=num_tasks)(inputs())
  assert len(outs) == num_tasks
  assert all(o.shape == (BATCH, 6) for o in outs)


@pytest.mark.parametrize("layer,pool", [
    (MMoE(4, (8, 6), num_tasks=3, seed=2), 4),
    (PLE(1, 2, 3, (8, 6), num_tasks=3), 5),
    (PLE(3, 2, 1, (6,), num_tasks=3), 3),
    (PLE(2, 0, 2, (6,), num_tasks=3), 2),
])
def test_gated_backbones_shapes_and_gates(layer, pool):
  x = inputs()
  outs, gates = layer(x, return_gates=True)
  assert len(outs) == 3 and len(gates) == 3
  for o, g in zip(outs, gates):
    assert o.shape == (BATCH, 6)
    assert g.shape == (BATCH, pool) and g.dtype == tf.float32
    assert np.all(g.numpy() >= 0)
    np.testing.assert_allclose(g.numpy().sum(-1), 1.0, atol=1e-6)
  np.testing.assert_allclose(layer(x)[0], outs[0])


def test_mmoe_output_is_gated_mixture_of_experts():
  layer = MMoE(3, (4,), num_tasks=2, seed=1)
  x = inputs()
  outs, gates = layer(x, return_gates=True)
  kernel, bias = [w.numpy() for w in layer._experts.weights]
  experts = np.maximum(np.einsum("bi,eio->beo", x.numpy(), kernel) + bias, 0)
  for o, g in zip(outs, gates):
    np.testing.assert_allclose(
        o, np.einsum("be,bed->bd", g.numpy(), experts), rtol=1e-5, atol=1e-6)


def test_ple_task_experts_start_different():
  layer = PLE(1, 1, 2, (4,), num_tasks=2)
  layer(inputs())
  k0 = layer._task_experts[0][0].kernels[0].numpy()
  k1 = layer._task_experts[0][1].kernels[0].numpy()
  assert not np.allclose(k0, k1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
  check_config_round_trip(*CASES[case])


def test_keras_serialize_round_trip():
  import tf_keras  # pylint: disable=g-import-not-at-top
  layer = MMoE(2, (4,), seed=1)
  restored = tf_keras.layers.deserialize(tf_keras.layers.serialize(layer))
  assert isinstance(restored, MMoE)
  assert restored.get_config() == layer.get_config()


@pytest.mark.parametrize("make,arg", [
    (lambda: SharedBottom((4,), num_tasks=0), "num_tasks"),
    (lambda: MMoE(0, (4,)), "num_experts"),
    (lambda: MMoE(2, ()), "expert_units"),
    (lambda: MMoE(2, (4,), dropout=-0.1), "dropout"),
    (lambda: PLE(0, 1, 1, (4,)), "num_levels"),
    (lambda: PLE(1, -1, 1, (4,)), "num_shared_experts"),
    (lambda: PLE(1, 1, 0, (4,)), "num_task_experts"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()
