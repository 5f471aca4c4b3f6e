"""Tests of adaftr_tf.layers.embedding: FieldEmbedding (ids, lists, l2)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers import FieldEmbedding
from tests.helpers.layers import BATCH


def test_field_embedding_matches_per_field_reference():
  sizes, dim = (3, 5, 2), 4
  layer = FieldEmbedding(sizes, num_numerical=2, embedding_dim=dim, seed=1)
  rng = np.random.default_rng(0)
  ids = np.stack([rng.integers(0, s, size=BATCH) for s in sizes], -1)
  num = rng.normal(size=(BATCH, 2)).astype(np.float32)
  out = layer(tf.constant(ids, tf.int64), tf.constant(num)).numpy()
  assert out.shape == (BATCH, 5, dim) and layer.output_dim == 5 * dim
  # Reference: separate per-field tables cut from the concatenated one.
  table = layer.table.numpy()
  assert table.shape == (sum(sizes), dim)
  tables = np.split(table, np.cumsum(sizes)[:-1])
  w, b = layer.numerical_kernel.numpy(), layer.numerical_bias.numpy()
  for f, t in enumerate(tables):
    np.testing.assert_array_equal(out[:, f], t[ids[:, f]])
  for f in range(2):
    np.testing.assert_allclose(out[:, 3 + f], num[:, f, None] * w[f] + b[f],
                               rtol=1e-6)


def test_field_embedding_only_categorical_or_only_numerical():
  cat = FieldEmbedding((4, 4), 0, 3)
  assert cat(tf.constant([[0, 3], [1, 2]], tf.int32)).shape == (2, 2, 3)
  assert not hasattr(cat, "numerical_kernel")
  num = FieldEmbedding((), 2, 3)
  out = num(tf.zeros([2, 0], tf.int32), tf.ones([2, 2]))
  assert out.shape == (2, 2, 3) and num.output_dim == 6
  assert not hasattr(num, "table")


def test_field_embedding_l2_on_gathered_rows_only():
  layer = FieldEmbedding((10,), 0, 2, l2=0.5, seed=0)
  ids = tf.constant([[1], [1], [4]])
  layer(ids)
  table = layer.table.numpy()
  expected = 0.5 * (2 * np.sum(table[1] ** 2) + np.sum(table[4] ** 2)) / 3
  assert len(layer.losses) == 1
  np.testing.assert_allclose(layer.losses[0], expected, rtol=1e-6)


@pytest.mark.parametrize("lists", [False, True])
def test_field_embedding_l2_is_float32_under_mixed_bfloat16(lists):
  """The penalty joins the float32 loss (a bfloat16 one failed to add to it:
  `compute_loss` under runtime.mixed_precision=mixed_bfloat16)."""
  import tf_keras
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    layer = FieldEmbedding((10,), 0, 2, l2=0.5, seed=0)
    ids = (tf.RaggedTensor.from_uniform_row_length(
        tf.ragged.constant([[1], [1], [4]], tf.int64), 1) if lists
           else tf.constant([[1], [1], [4]]))
    assert layer(ids).dtype == tf.bfloat16
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)
  table = layer.table.numpy()
  expected = 0.5 * (2 * np.sum(table[1] ** 2) + np.sum(table[4] ** 2)) / 3
  assert layer.losses[0].dtype == tf.float32
  # The rows were read in bfloat16 (8 bits of mantissa).
  np.testing.assert_allclose(layer.losses[0], expected, rtol=2e-2)
  assert (layer.losses[0] + tf.constant(1.0)).dtype == tf.float32


def test_field_embedding_gradient_is_sparse():
  layer = FieldEmbedding((1000, 10), 0, 4)
  ids = tf.constant([[3, 2]])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(ids))
  grad = tape.gradient(loss, layer.table)
  assert isinstance(grad, tf.IndexedSlices)
  np.testing.assert_array_equal(np.sort(grad.indices.numpy()), [3, 1002])


def test_field_embedding_config_round_trip():
  layer = FieldEmbedding((3, 4), 2, 5, l2=1e-4, seed=9)
  ids, num = tf.constant([[0, 3], [2, 1]]), tf.ones([2, 2])
  config = layer.get_config()
  clone = FieldEmbedding.from_config(config)
  assert clone.get_config() == config
  np.testing.assert_array_equal(layer(ids, num), clone(ids, num))


@pytest.mark.parametrize("make,arg", [
    (lambda: FieldEmbedding((3, 0), 1, 4), "categorical_sizes"),
    (lambda: FieldEmbedding((3,), -1, 4), "num_numerical"),
    (lambda: FieldEmbedding((3,), 1, 0), "embedding_dim"),
    (lambda: FieldEmbedding((), 0, 4), "num_numerical"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()


# ---------------------------------------------------------------- pooled lists


def _ragged_ids(lists):
  """[batch][field] id lists -> ragged [batch, n_cat, None]."""
  inner = tf.ragged.constant([ids for example in lists for ids in example],
                             tf.int64)
  return tf.RaggedTensor.from_uniform_row_length(inner, len(lists[0]))


@pytest.mark.parametrize("combiner", ["mean", "sum", "sqrtn"])
def test_field_embedding_pools_lists_like_numpy(combiner):
  sizes = (3, 6)
  layer = FieldEmbedding(sizes, 1, 4, seed=3, combiner=combiner)
  lists = [[[2], [0, 5, 5]], [[1], [4]], [[0], [1, 2]]]
  out = layer(_ragged_ids(lists), tf.ones([3, 1])).numpy()
  assert out.shape == (3, 3, 4)
  table = layer.table.numpy()
  scale = {"mean": lambda n: 1 / n, "sum": lambda n: 1.0,
           "sqrtn": lambda n: 1 / np.sqrt(n)}[combiner]
  for b, example in enumerate(lists):
    for f, ids in enumerate(example):
      rows = table[np.asarray(ids) + sum(sizes[:f])]
      np.testing.assert_allclose(out[b, f], rows.sum(0) * scale(len(ids)),
                                 rtol=1e-6)


def test_field_embedding_ragged_matches_dense_for_single_ids():
  layer = FieldEmbedding((4, 5), 0, 3, seed=2)
  ids = np.array([[0, 4], [3, 1]])
  dense = layer(tf.constant(ids)).numpy()
  ragged = layer(_ragged_ids([[[0], [4]], [[3], [1]]])).numpy()
  np.testing.assert_allclose(ragged, dense, rtol=1e-6)


def test_field_embedding_pooled_gradient_sparse_and_l2_on_gathered_rows():
  layer = FieldEmbedding((10, 10), 0, 2, l2=0.5, seed=0)
  ids = _ragged_ids([[[1], [2, 3]], [[1], [4]]])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(ids))
  grad = tape.gradient(loss, layer.table)
  assert isinstance(grad, tf.IndexedSlices)
  assert sorted(grad.indices.numpy().tolist()) == [1, 1, 12, 13, 14]
  table = layer.table.numpy()
  expected = 0.5 * sum(np.sum(table[i] ** 2) for i in (1, 12, 13, 1, 14)) / 2
  np.testing.assert_allclose(layer.losses[-1], expected, rtol=1e-6)


def test_field_embedding_combiner_config_and_validation():
  layer = FieldEmbedding((4,), 0, 2, combiner="sum")
  assert FieldEmbedding.from_config(layer.get_config()).combiner == "sum"
  with pytest.raises(ValueError, match="combiner='max'.*mean"):
    FieldEmbedding((4,), 0, 2, combiner="max")
