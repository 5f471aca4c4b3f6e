"""Tests of adaftr_tf.layers.task_bottoms: one bottom MLP per task."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers.task_bottoms import TaskBottoms
from tests.helpers.layers import BATCH, check_config_round_trip, inputs


def test_one_shared_input_gives_one_output_per_task():
  layer = TaskBottoms((8, 6), num_tasks=3, seed=1)
  outs = layer(inputs())
  assert len(outs) == 3 and all(o.shape == (BATCH, 6) for o in outs)
  # Separate networks: the same input gives different task outputs.
  assert not np.allclose(outs[0], outs[1])
  outs_again, gates = layer(inputs(), return_gates=True)
  assert gates == []
  for a, b in zip(outs, outs_again):
    np.testing.assert_array_equal(a, b)


def test_one_input_per_task():
  layer = TaskBottoms((6,), num_tasks=2)
  outs = layer([inputs(0), inputs(1)[:, :3]])
  assert [o.shape for o in outs] == [(BATCH, 6), (BATCH, 6)]
  # Task k's output depends on its own input only.
  with tf.GradientTape() as tape:
    first, second = inputs(0), inputs(1)[:, :3]
    tape.watch([first, second])
    total = tf.reduce_sum(layer([first, second])[0])
  grads = tape.gradient(total, [first, second])
  assert grads[0] is not None and grads[1] is None
  with pytest.raises(ValueError, match="got 1 inputs for 2 tasks"):
    layer([inputs()])


def test_there_is_no_shared_tensor_to_tap():
  with pytest.raises(ValueError, match="no shared tensor to tap"):
    TaskBottoms((4,))(inputs(), tap=lambda t: t)


def test_config_round_trip():
  check_config_round_trip(
      TaskBottoms, dict(units=(8, 6), num_tasks=3, dropout=0.1, seed=2), {})


@pytest.mark.parametrize("make,arg", [
    (lambda: TaskBottoms(()), "units"),
    (lambda: TaskBottoms((4,), num_tasks=0), "num_tasks"),
    (lambda: TaskBottoms((4,), dropout=1.0), "dropout"),
    (lambda: TaskBottoms((4,), seed=-1), "seed"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()
