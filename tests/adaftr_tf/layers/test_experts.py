"""Tests of adaftr_tf.layers.experts: SharedBottom, MMoE and PLE."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

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


# --- the formulation (issue 16) --------------------------------------------
# The experts' formulation (issue 16) computes what the batched-einsum
# layer it replaced computed, on the same weights.
#
# The reference below is that layer's arithmetic written out in TensorFlow ops
# (`bi,eio->beo`, then `bei,eio->beo`, mixed by `be,bed->bd`), reading the
# library layer's own variables; gradients come from the same tape. The
# variables keep their names and shapes, so older checkpoints still load.

REF_BATCH, REF_IN = 64, 24


@pytest.fixture(params=["float32", "mixed_bfloat16"])
def policy(request):
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(request.param)
  yield request.param
  tf_keras.mixed_precision.set_global_policy(previous)


def _x(seed=0):
  return tf.constant(np.random.default_rng(seed).normal(size=(REF_BATCH, REF_IN)),
                     tf.float32)


def _read(variable, dtype):
  return tf.cast(tf.convert_to_tensor(variable.value()), dtype)


def _einsum_experts(experts, x):
  """The replaced formulation: x [batch, in] -> [batch, E, units[-1]]."""
  h = x
  for i, (kernel, bias) in enumerate(zip(experts.kernels, experts.biases)):
    equation = "bi,eio->beo" if i == 0 else "bei,eio->beo"
    h = tf.nn.relu(tf.einsum(equation, h, _read(kernel, x.dtype))
                   + _read(bias, x.dtype))
  return h


def _einsum_mix(gate, x, experts):
  """Softmax gate [batch, E] (float32) and the mixture [batch, d]."""
  # The gate layer itself (unchanged), computing in x's dtype.
  logits = tf.nn.bias_add(tf.matmul(x, _read(gate.kernel, x.dtype)),
                          _read(gate.bias, x.dtype))
  weights = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
  return tf.einsum("be,bed->bd", tf.cast(weights, x.dtype), experts), weights


def _reference_mmoe(layer, x, tap=None):
  experts = _einsum_experts(layer._experts, x)
  if tap is not None:
    experts = tap(experts)
  mixed = [_einsum_mix(gate, x, experts) for gate in layer._gates]
  return [m for m, _ in mixed], [w for _, w in mixed]


def _reference_ple(layer, x, tap=None):
  task_inputs, shared_input = [x] * layer.num_tasks, x
  for level in range(layer.num_levels):
    task_out = [_einsum_experts(e, inp) for e, inp in
                zip(layer._task_experts[level], task_inputs)]
    shared = layer._shared_experts[level]
    shared_out = [_einsum_experts(shared, shared_input)] if shared else []
    if tap is not None and level == 0:
      shared_out = [tap(shared_out[0])]
    mixed = [_einsum_mix(gate, inp, tf.concat([own] + shared_out, axis=1))
             for gate, inp, own in zip(layer._task_gates[level], task_inputs,
                                       task_out)]
    if layer._shared_gates[level] is not None:
      shared_input, _ = _einsum_mix(layer._shared_gates[level], shared_input,
                                    tf.concat(task_out + shared_out, axis=1))
    task_inputs = [m for m, _ in mixed]
  return task_inputs, [w for _, w in mixed]


LAYERS = {
    "mmoe": (lambda: MMoE(4, (16, 8), num_tasks=2, seed=3), _reference_mmoe),
    "mmoe_one_layer": (lambda: MMoE(3, (8,), num_tasks=3, seed=1),
                       _reference_mmoe),
    "ple": (lambda: PLE(2, 2, 1, (16, 8), num_tasks=2, seed=3),
            _reference_ple),
    "ple_three_layers": (lambda: PLE(1, 1, 2, (12, 8, 6), num_tasks=2,
                                     seed=2), _reference_ple),
}


def _outputs_and_gradients(run, variables, x):
  """Outputs, gates and the gradients of a fixed projection of the outputs
  with respect to `variables` and to the tapped experts' outputs."""
  tapped = []

  def tap(experts):
    tape.watch(experts)
    tapped.append(experts)
    return experts

  with tf.GradientTape(persistent=True) as tape:
    outputs, gates = run(x, tap)
    directions = [tf.constant(np.random.default_rng(k).normal(
        size=o.shape), tf.float32) for k, o in enumerate(outputs)]
    loss = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32) * d)
                     for o, d in zip(outputs, directions)])
  grads = tape.gradient(loss, variables + tapped)
  return outputs, gates, grads, tapped[0]


def _as_float32(tensors):
  return [np.asarray(tf.cast(t, tf.float32)) for t in tensors]


def _close(a, b, tolerance):
  scale = max(1.0, float(np.abs(b).max()))
  np.testing.assert_allclose(a / scale, b / scale, **tolerance)


def _relative_errors(tensors, exact):
  """Mean |error| / mean |exact| of each tensor."""
  return np.array([np.abs(a - c).mean() / max(np.abs(c).mean(), 1e-6)
                   for a, c in zip(tensors, exact)])


def _no_less_accurate(ours, theirs, exact):
  """bfloat16: against the float32 result, our mean relative error over the
  outputs, gates and gradients is within 1.5x the replaced formulation's
  (both round to 8-bit mantissas, in other places), its worst within 2x."""
  errors, before = (_relative_errors(t, exact) for t in (ours, theirs))
  assert errors.mean() <= 1.5 * before.mean()
  assert errors.max() <= 2 * before.max()


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_outputs_gates_and_gradients_equal_the_einsum_formulation(
    case, policy):
  make, reference = LAYERS[case]
  layer = make()
  x = _x()
  layer(x)   # builds
  variables = layer.trainable_variables
  compute = tf.as_dtype(layer.compute_dtype)
  run = lambda fn: _outputs_and_gradients(fn, variables, x)
  ours = run(lambda x, tap: layer(x, return_gates=True, tap=tap))
  theirs = run(lambda x, tap: reference(layer, tf.cast(x, compute), tap))
  assert ours[3].shape == theirs[3].shape   # the tap sees [batch, E, d]
  assert ours[0][0].dtype == compute
  assert len(ours[2]) == len(theirs[2]) == len(variables) + 1
  flat = lambda result: _as_float32(result[0] + result[1] + result[2])
  if policy == "float32":
    for a, b in zip(flat(ours), flat(theirs)):
      _close(a, b, dict(rtol=1e-5, atol=1e-5))
  else:
    exact = run(lambda x, tap: reference(layer, x, tap))
    _no_less_accurate(flat(ours), flat(theirs), flat(exact))


@pytest.mark.parametrize("make", [
    lambda: MMoE(4, (16, 8), seed=3, name="mmoe"),
    lambda: PLE(2, 2, 1, (16, 8), seed=3, name="ple")])
def test_variables_keep_their_names_and_shapes(make):
  """[E, in, w] kernels and [E, w] biases, and the gates' Dense variables,
  named as before issue 16 (the MMoE reads its gates as one kernel)."""
  layer = make()
  layer(_x())
  shapes = {v.name: tuple(v.shape) for v in layer.weights}
  assert len(shapes) == len(layer.weights)   # no two share a name
  if isinstance(layer, MMoE):
    assert shapes == {
        "mmoe/experts/kernel_0:0": (4, REF_IN, 16),
        "mmoe/experts/bias_0:0": (4, 16),
        "mmoe/experts/kernel_1:0": (4, 16, 8),
        "mmoe/experts/bias_1:0": (4, 8),
        **{f"mmoe/gate_{k}/{name}:0": shape for k in range(layer.num_tasks)
           for name, shape in (("kernel", (REF_IN, 4)), ("bias", (4,)))}}
  else:
    assert shapes["ple/level0_shared_experts/kernel_0:0"] == (2, REF_IN, 16)
    assert shapes["ple/level1_task1_experts/kernel_1:0"] == (1, 16, 8)
    assert shapes["ple/level1_task1_experts/bias_1:0"] == (1, 8)


def test_a_checkpoint_of_the_einsum_layers_restores_and_gives_their_outputs():
  """tests/data/checkpoints/README.md: written before issue 16."""
  folder = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                        "data", "checkpoints", "einsum_experts")
  stored = np.load(os.path.join(folder, "outputs.npz"))
  mmoe, ple = MMoE(3, (8, 4), num_tasks=2, seed=7), PLE(2, 1, 1, (8, 4),
                                                          num_tasks=2, seed=7)
  x = tf.constant(stored["x"])
  mmoe(x), ple(x)   # builds, with other initial weights
  tf.train.Checkpoint(mmoe=mmoe, ple=ple).read(
      os.path.join(folder, "ckpt")).assert_consumed()
  for name, layer in [("mmoe", mmoe), ("ple", ple)]:
    outputs, gates = layer(x, return_gates=True)
    for k, tensor in enumerate(outputs + gates):
      np.testing.assert_allclose(tensor, stored[f"{name}_{k}"], rtol=1e-5,
                                 atol=1e-6)


def test_dropout_drops_expert_units_in_training_only():
  """Each expert unit is zeroed with probability `dropout` (a mask of its
  own per expert) and the kept ones scaled by 1 / (1 - dropout), in training
  only; inference is the reference."""
  rate = 0.25
  layer = MMoE(4, (32,), dropout=rate, seed=5)
  x = _x()
  seen = []
  layer(x, training=True, tap=lambda e: seen.append(e) or e)
  dropped = seen[0].numpy()
  expected = _einsum_experts(layer._experts, x).numpy()
  active = expected > 0
  kept = dropped[active] != 0
  assert abs(1 - kept.mean() - rate) < 0.03   # ~2000 active units
  np.testing.assert_allclose(dropped[active][kept],
                             expected[active][kept] / (1 - rate), rtol=1e-5)
  masks = (dropped == 0) & active
  assert not np.array_equal(masks[:, 0], masks[:, 1])   # one mask per expert
  for a, b in zip(layer(x, training=False), _reference_mmoe(layer, x)[0]):
    _close(a.numpy(), b.numpy(), dict(rtol=1e-5, atol=1e-5))
