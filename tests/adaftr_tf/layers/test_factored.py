"""Tests of adaftr_tf.layers.factored: the factored embeddings equal the dense
ones, and every first matmul through them equals the dense matmul."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers import MLP
from adaftr_tf.layers import PLE
from adaftr_tf.layers import FieldEmbedding
from adaftr_tf.layers import MMoE
from adaftr_tf.layers import SharedBottom
from adaftr_tf.layers import factored
from adaftr_tf.layers.task_bottoms import TaskBottoms


def _inputs(sizes=(5, 7, 3), num_numerical=4, dim=3, batch=6, seed=0):
  """A built FieldEmbedding (random numerical bias too) and its inputs."""
  rng = np.random.default_rng(seed)
  layer = FieldEmbedding(sizes, num_numerical, dim, seed=seed)
  ids = np.stack([rng.integers(0, s, batch) for s in sizes], 1) if sizes \
      else None
  values = rng.normal(size=[batch, num_numerical]).astype(np.float32)
  layer(ids, values)
  if num_numerical:
    layer.numerical_bias.assign(rng.normal(size=[num_numerical, dim]))
  return layer, ids, values


@pytest.mark.parametrize("sizes", [(5, 7, 3), ()])
def test_dense_equals_the_flattened_embedding(sizes):
  layer, ids, values = _inputs(sizes)
  expected = tf.reshape(layer(ids, values), [len(values), -1])
  np.testing.assert_allclose(layer.factored(ids, values).dense().numpy(),
                             expected.numpy(), rtol=0, atol=1e-7)


@pytest.mark.parametrize("sizes", [(5, 7, 3), ()])
def test_matmul_equals_the_dense_matmul(sizes):
  layer, ids, values = _inputs(sizes)
  x = layer.factored(ids, values)
  kernel = tf.random.stateless_normal([layer.output_dim, 11], [1, 2])
  expected = tf.matmul(x.dense(), kernel)
  np.testing.assert_allclose(x.matmul(kernel).numpy(), expected.numpy(),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(factored.matmul(x, kernel).numpy(),
                             expected.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(factored.matmul(x.dense(), kernel).numpy(),
                                expected.numpy())
  assert factored.dense(x).shape == [len(values), layer.output_dim]


def test_factored_needs_a_built_layer_with_numerical_fields():
  with pytest.raises(ValueError, match="built FieldEmbedding"):
    FieldEmbedding((3,), 2, 4).factored(np.zeros([1, 1]), np.zeros([1, 2]))
  layer, ids, _ = _inputs(num_numerical=0)
  with pytest.raises(ValueError, match="numerical fields"):
    layer.factored(ids, None)


def test_the_factored_form_adds_no_embedding_penalty():
  layer = FieldEmbedding((4,), 2, 3, l2=0.1)
  layer(np.zeros([2, 1], np.int64), np.zeros([2, 2], np.float32))
  count = len(layer.losses)
  layer.factored(np.zeros([2, 1], np.int64), np.zeros([2, 2], np.float32))
  assert len(layer.losses) == count


BACKBONES = {
    "mmoe": lambda: MMoE(3, (8, 4), seed=1),
    "ple": lambda: PLE(2, 1, 2, (8, 4), seed=1),
    "shared_bottom": lambda: SharedBottom((8, 4), seed=1),
    "task_bottoms": lambda: TaskBottoms((8, 4), seed=1),
    "mlp": lambda: MLP((8, 4), seed=1),
}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_reads_the_factored_form_like_the_dense(name):
  layer, ids, values = _inputs()
  x = layer.factored(ids, values)
  backbone = BACKBONES[name]()
  dense = backbone(x.dense(), training=False)   # builds it
  folded = factored.call_layer(backbone, x, training=False)
  for got, expected in zip(tf.nest.flatten(folded), tf.nest.flatten(dense)):
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_call_layer_calls_dense_inputs_through_keras():
  mlp = MLP((3,), seed=0)
  x = tf.ones([2, 5])
  np.testing.assert_array_equal(factored.call_layer(mlp, x).numpy(),
                                mlp(x).numpy())
  assert mlp.built
