"""Tests of adaftr_tf.layers: shapes, gates, config round trips, bad args."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.layers import MLP
from adaftr_tf.layers import MMoE
from adaftr_tf.layers import PLE
from adaftr_tf.layers import FieldEmbedding
from adaftr_tf.layers import ProjectionHead
from adaftr_tf.layers import RelatednessNetwork
from adaftr_tf.layers import SharedBottom
from adaftr_tf.layers import TaskTower

BATCH, IN = 5, 7


def _x(seed=0, scale=1.0):
  return tf.constant(
      np.random.default_rng(seed).normal(size=(BATCH, IN)) * scale, tf.float32)


def _flat(out):
  """Flattens nested outputs (tuples / lists) into a list of numpy arrays."""
  if isinstance(out, (list, tuple)):
    return [a for o in out for a in _flat(o)]
  return [out.numpy()]


# (constructor, kwargs, call kwargs) for every layer on a [BATCH, IN] input.
DENSE_CASES = {
    "mlp": (MLP, dict(units=(8, 4), dropout=0.1, use_batch_norm=True, l2=1e-3,
                      seed=3), {}),
    "shared_bottom": (SharedBottom, dict(units=(8, 6), num_tasks=3), {}),
    "mmoe": (MMoE, dict(num_experts=3, expert_units=(8, 6), dropout=0.1), {}),
    "ple": (PLE, dict(num_levels=2, num_shared_experts=2, num_task_experts=1,
                      expert_units=(8, 6)), {}),
    "tower": (TaskTower, dict(units=(8, 4), use_batch_norm=True), {}),
    "projection": (ProjectionHead, dict(hidden_units=8, output_dim=3), {}),
    "tau_instance": (RelatednessNetwork, dict(units=(8,), tau_min=0.05,
                                              tau_max=1.0), {}),
    "tau_global": (RelatednessNetwork, dict(units=(), tau_min=0.05,
                                            tau_max=1.0, mode="global"), {}),
    "tau_fixed": (RelatednessNetwork, dict(units=(), tau_min=0.1, tau_max=0.1,
                                           mode="fixed"), {}),
}


def test_mlp_shape():
  assert MLP((8, 4))(_x()).shape == (BATCH, 4)


def test_mlp_dropout_only_in_training():
  layer = MLP((16,), dropout=0.5, seed=1)
  x = _x()
  np.testing.assert_allclose(layer(x, training=False), layer(x))
  assert not np.allclose(layer(x, training=True), layer(x, training=False))


def test_mlp_same_seed_same_weights():
  a, b = MLP((4, 3), seed=5), MLP((4, 3), seed=5)
  x = _x()
  np.testing.assert_array_equal(a(x), b(x))


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


@pytest.mark.parametrize("num_tasks", [1, 3])
def test_shared_bottom_outputs(num_tasks):
  outs = SharedBottom((8, 6), num_tasks=num_tasks)(_x())
  assert len(outs) == num_tasks
  assert all(o.shape == (BATCH, 6) for o in outs)


@pytest.mark.parametrize("layer,pool", [
    (MMoE(4, (8, 6), num_tasks=3, seed=2), 4),
    (PLE(1, 2, 3, (8, 6), num_tasks=3), 5),
    (PLE(3, 2, 1, (6,), num_tasks=3), 3),
    (PLE(2, 0, 2, (6,), num_tasks=3), 2),
])
def test_gated_backbones_shapes_and_gates(layer, pool):
  x = _x()
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
  x = _x()
  outs, gates = layer(x, return_gates=True)
  kernel, bias = [w.numpy() for w in layer._experts.weights]
  experts = np.maximum(np.einsum("bi,eio->beo", x.numpy(), kernel) + bias, 0)
  for o, g in zip(outs, gates):
    np.testing.assert_allclose(
        o, np.einsum("be,bed->bd", g.numpy(), experts), rtol=1e-5, atol=1e-6)


def test_ple_task_experts_start_different():
  layer = PLE(1, 1, 2, (4,), num_tasks=2)
  layer(_x())
  k0 = layer._task_experts[0][0].kernels[0].numpy()
  k1 = layer._task_experts[0][1].kernels[0].numpy()
  assert not np.allclose(k0, k1)


def test_task_tower():
  logit, hidden = TaskTower((8, 4))(_x())
  assert logit.shape == (BATCH,) and logit.dtype == tf.float32
  assert hidden.shape == (BATCH, 4)


def test_projection_head_unit_rows():
  z = ProjectionHead(8, 3)(_x(scale=1e3))
  assert z.shape == (BATCH, 3) and z.dtype == tf.float32
  np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, rtol=1e-5)


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


def test_field_embedding_gradient_is_sparse():
  layer = FieldEmbedding((1000, 10), 0, 4)
  ids = tf.constant([[3, 2]])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(ids))
  grad = tape.gradient(loss, layer.table)
  assert isinstance(grad, tf.IndexedSlices)
  np.testing.assert_array_equal(np.sort(grad.indices.numpy()), [3, 1002])


def test_relatedness_tau_bounded_for_huge_inputs():
  for mode in ("instance", "global"):
    layer = RelatednessNetwork((8,), 0.05, 1.0, mode=mode, seed=4)
    for scale in (1e6, -1e6, 1.0):
      tau = layer(_x(scale=scale)).numpy()
      assert tau.shape == (BATCH,) and tau.dtype == np.float32
      assert np.all(tau >= 0.05) and np.all(tau <= 1.0)


def test_relatedness_initial_tau_near_geometric_middle():
  mid = np.sqrt(0.05 * 1.0)
  # Far from either bound (0.05 or 1.0), whatever the random init.
  np.testing.assert_allclose(RelatednessNetwork((8,), 0.05, 1.0)(_x()), mid,
                             rtol=0.3)
  np.testing.assert_allclose(
      RelatednessNetwork((), 0.05, 1.0, mode="global")(_x()), mid, rtol=1e-5)


def test_relatedness_global_same_tau_every_row():
  layer = RelatednessNetwork((8,), 0.05, 1.0, mode="global")
  layer.global_logit.assign(0.7)
  tau = layer(_x()).numpy()
  np.testing.assert_allclose(tau, 0.05 + 0.95 / (1 + np.exp(-0.7)), rtol=1e-6)
  assert len(layer.trainable_weights) == 1
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(_x()))
  assert tape.gradient(loss, layer.global_logit) is not None


def test_relatedness_fixed_mode():
  layer = RelatednessNetwork((8,), 0.04, 1.0, mode="fixed")
  np.testing.assert_allclose(layer(_x()), np.full(BATCH, 0.2), rtol=1e-6)
  assert not layer.trainable_weights and not layer.weights
  given = RelatednessNetwork((), 0.04, 1.0, mode="fixed", fixed_tau=0.5)
  np.testing.assert_allclose(given(_x()), 0.5)
  with pytest.raises(ValueError, match="mode"):
    given.relatedness_logit(_x())


def test_relatedness_logit_matches_tau():
  layer = RelatednessNetwork((8,), 0.1, 2.0, seed=2)
  x = _x()
  f = layer.relatedness_logit(x).numpy()
  assert f.shape == (BATCH,)
  np.testing.assert_allclose(layer(x), 0.1 + 1.9 / (1 + np.exp(-f)),
                             rtol=1e-6)


@pytest.mark.parametrize("case", sorted(DENSE_CASES))
def test_config_round_trip(case):
  cls, kwargs, call_kwargs = DENSE_CASES[case]
  layer = cls(**kwargs)
  x = _x()
  out = layer(x, **call_kwargs)
  config = layer.get_config()
  clone = cls.from_config(config)
  assert clone.get_config() == config
  clone(x, **call_kwargs)
  clone.set_weights(layer.get_weights())
  for a, b in zip(_flat(out), _flat(clone(x, **call_kwargs))):
    np.testing.assert_array_equal(a, b)


def test_field_embedding_config_round_trip():
  layer = FieldEmbedding((3, 4), 2, 5, l2=1e-4, seed=9)
  ids, num = tf.constant([[0, 3], [2, 1]]), tf.ones([2, 2])
  config = layer.get_config()
  clone = FieldEmbedding.from_config(config)
  assert clone.get_config() == config
  np.testing.assert_array_equal(layer(ids, num), clone(ids, num))


def test_keras_serialize_round_trip():
  import tf_keras  # pylint: disable=g-import-not-at-top
  layer = MMoE(2, (4,), seed=1)
  restored = tf_keras.layers.deserialize(tf_keras.layers.serialize(layer))
  assert isinstance(restored, MMoE)
  assert restored.get_config() == layer.get_config()


@pytest.mark.parametrize("make,arg", [
    (lambda: MLP(()), "units"),
    (lambda: MLP((4, -1)), "units"),
    (lambda: MLP(4), "units"),
    (lambda: MLP((4,), activation="nope"), "activation"),
    (lambda: MLP((4,), dropout=1.0), "dropout"),
    (lambda: MLP((4,), l2=-1.0), "l2"),
    (lambda: MLP((4,), seed=-1), "seed"),
    (lambda: FieldEmbedding((3, 0), 1, 4), "categorical_sizes"),
    (lambda: FieldEmbedding((3,), -1, 4), "num_numerical"),
    (lambda: FieldEmbedding((3,), 1, 0), "embedding_dim"),
    (lambda: FieldEmbedding((), 0, 4), "num_numerical"),
    (lambda: SharedBottom((4,), num_tasks=0), "num_tasks"),
    (lambda: MMoE(0, (4,)), "num_experts"),
    (lambda: MMoE(2, ()), "expert_units"),
    (lambda: MMoE(2, (4,), dropout=-0.1), "dropout"),
    (lambda: PLE(0, 1, 1, (4,)), "num_levels"),
    (lambda: PLE(1, -1, 1, (4,)), "num_shared_experts"),
    (lambda: PLE(1, 1, 0, (4,)), "num_task_experts"),
    (lambda: TaskTower((0,)), "units"),
    (lambda: ProjectionHead(0, 4), "hidden_units"),
    (lambda: ProjectionHead(4, 0), "output_dim"),
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
