"""Tests of adaftr_tf.layers.towers: TaskTower and ProjectionHead."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers import ProjectionHead
from adaftr_tf.layers import TaskTower
from tests.helpers.layers import BATCH, check_config_round_trip, inputs


# (constructor, kwargs, call kwargs) on a [BATCH, IN] input.
CASES = {
    "tower": (TaskTower, dict(units=(8, 4), use_batch_norm=True), {}),
    "projection": (ProjectionHead, dict(hidden_units=8, output_dim=3), {}),
}


def test_consecutive_seeds_give_distinct_sublayer_weights():
  # Tower k built with seed + k must not reuse tower 0's block-1 weights.
  x = tf.ones([2, 8])
  t0, t1 = TaskTower((8, 8), seed=0), TaskTower((8, 8), seed=1)
  t0(x), t1(x)
  kernels = [w.numpy() for t in (t0, t1) for w in t.weights
             if w.shape == (8, 8)]
  assert len(kernels) == 4
  for i in range(4):
    for j in range(i):
      assert not np.allclose(kernels[i], kernels[j])


def test_task_tower():
  logit, hidden = TaskTower((8, 4))(inputs())
  assert logit.shape == (BATCH,) and logit.dtype == tf.float32
  assert hidden.shape == (BATCH, 4)


def test_projection_head_unit_rows():
  z = ProjectionHead(8, 3)(inputs(scale=1e3))
  assert z.shape == (BATCH, 3) and z.dtype == tf.float32
  np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
  check_config_round_trip(*CASES[case])


@pytest.mark.parametrize("make,arg", [
    (lambda: TaskTower((0,)), "units"),
    (lambda: ProjectionHead(0, 4), "hidden_units"),
    (lambda: ProjectionHead(4, 0), "output_dim"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()
