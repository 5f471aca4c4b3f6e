"""Tests of adaftr_tf.tasks.contrastive: ContrastiveTask's loss and dtypes."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.losses import symmetric_info_nce
from adaftr_tf.tasks import ContrastiveTask
from tests.helpers.numeric import unit_rows


@pytest.mark.parametrize("run", ["eager", "graph"])
def test_contrastive_task_in_batch_loss_equals_the_two_directions(run):
  """ContrastiveTask's XLA-compiled, fused local loss: same values and
  gradients as the two-matmul symmetric InfoNCE, eagerly and in a graph."""
  rng = np.random.default_rng(5)
  u = tf.Variable(unit_rows(rng, 32, 8))
  v = tf.Variable(unit_rows(rng, 32, 8))
  tau = tf.Variable(rng.uniform(0.02, 1.0, 32).astype(np.float32))
  weights = tf.range(1.0, 33.0)

  def loss_and_grads(fn):
    with tf.GradientTape() as tape:
      loss = fn(u, v, tau)
      total = tf.reduce_sum(loss * weights)
    return [loss] + tape.gradient(total, [u, v, tau])

  task = ContrastiveTask(symmetric=True)
  measured = (tf.function(loss_and_grads) if run == "graph"
              else loss_and_grads)(task)
  expected = loss_and_grads(lambda a, b, t: symmetric_info_nce(a, b, b, a, t))
  for a, b in zip(measured, expected):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=1e-5)
  assert float(task.loss_tracker.result()) == pytest.approx(
      float(tf.reduce_mean(expected[0])), rel=1e-5)


def test_info_nce_similarities_are_float32():
  u = tf.math.l2_normalize(tf.random.stateless_normal([8, 4], (1, 2)), -1)
  v = tf.math.l2_normalize(tf.random.stateless_normal([8, 4], (3, 4)), -1)
  tau = tf.fill([8], 0.1)
  exact = ContrastiveTask()(u, v, tau)
  half = ContrastiveTask()(tf.cast(u, tf.bfloat16), tf.cast(v, tf.bfloat16),
                           tf.cast(tau, tf.bfloat16))
  assert half.dtype == tf.float32
  np.testing.assert_allclose(half, exact, atol=0.05)
