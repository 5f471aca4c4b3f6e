"""Tests of adaftr_tf.xla: a function compiled on its own outside XLA and
inlined inside an XLA-compiled step, so that its gradient never turns the
step's inputs into compile-time constants (issue 16: one recompilation per
step)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import xla
from adaftr_tf.losses import symmetric_in_batch_info_nce
from tests.helpers.xla import entry_parameters
from tests.helpers.xla import inputs


def test_in_xla_context_only_inside_a_compiled_function():
  seen = []

  def probe(x):
    seen.append(xla.in_xla_context())
    return x + 1.0

  probe(tf.constant(1.0))
  tf.function(probe)(tf.constant(1.0))
  tf.function(probe, jit_compile=True)(tf.constant(1.0))
  assert seen == [False, False, True]


def test_compiled_is_jit_outside_xla_and_the_plain_function_inside():
  contexts = []

  def fn(x):
    contexts.append(xla.in_xla_context())
    return 2.0 * x

  compiled = xla.compiled(fn)
  assert float(compiled(tf.constant(3.0))) == 6.0   # eager: its own jit
  assert float(tf.function(lambda x: compiled(x), jit_compile=True)(
      tf.constant(4.0))) == 8.0
  # Traced once by its own jit function, then inline in the outer XLA graph.
  assert contexts == [True, True]
  assert compiled.__name__ == "fn"


def test_the_gradient_of_a_compiled_info_nce_in_an_xla_step_keeps_every_input():
  """The regression: a nested jit InfoNCE took the diagonal of u v^T; its
  gradient made u, v, tau and the weight w compile-time constants."""
  w = tf.Variable(tf.random.stateless_normal([8, 4], (1, 2)))
  loss = xla.compiled(symmetric_in_batch_info_nce)
  nested = tf.function(symmetric_in_batch_info_nce, jit_compile=True)

  def step_of(info_nce):
    @tf.function(jit_compile=True)
    def step(x):
      with tf.GradientTape() as tape:
        h = tf.math.l2_normalize(x @ w, axis=1)
        tau = 0.1 + tf.sigmoid(h[:, 0])
        total = tf.reduce_sum(info_nce(h, tf.roll(h, 1, axis=1), tau))
      return total, tape.gradient(total, w)
    return step

  x = tf.random.stateless_normal([16, 8], (3, 4))
  for name, fn in (("compiled", loss), ("nested jit", nested)):
    step = step_of(fn)
    assert entry_parameters(step, x) == inputs(step, x) == 2, name
  np.testing.assert_allclose(step_of(loss)(x)[1], step_of(nested)(x)[1],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 8, 100, 1001])
def test_searchsorted_equals_tf_searchsorted_eagerly_and_under_xla(n, side):
  """Ties, repeated elements, values outside the range and NaN (which
  tf.searchsorted puts first on the left side and last on the right)."""
  rng = np.random.default_rng(n)
  sequence = np.sort(rng.integers(0, 50, n)).astype(np.float32)
  values = rng.integers(-2, 53, [4, 33]).astype(np.float32)
  values[0, :2] = np.nan
  expected = tf.reshape(tf.searchsorted(
      sequence, values.reshape(-1), side=side, out_type=tf.int64),
                        values.shape) if n else np.zeros(values.shape)
  search = lambda s, v: xla.searchsorted(s, v, side=side)
  for fn in (search, tf.function(search, jit_compile=True)):
    got = fn(tf.constant(sequence), tf.constant(values))
    assert got.dtype == tf.int64 and got.shape == values.shape
    np.testing.assert_array_equal(got.numpy(), expected)


def test_searchsorted_under_xla_is_a_binary_search_of_a_million_ids():
  """XLA's own LowerBound compares every value with every id: 16 x 1,024
  values in 10^6 ids asked for 122 GiB. The binary search: log2 gathers."""
  rng = np.random.default_rng(0)
  ids = np.sort(rng.choice(10**7, 10**6, replace=False)).astype(np.int64)
  values = rng.integers(0, 10**7, [16, 1024]).astype(np.int64)
  values[0, :5] = ids[[0, 1, 17, -2, -1]]
  search = tf.function(lambda v: xla.searchsorted(ids, v), jit_compile=True)
  np.testing.assert_array_equal(search(tf.constant(values)).numpy(),
                                np.searchsorted(ids, values))
  hlo = search.experimental_get_compiler_ir(tf.constant(values))(stage="hlo")
  assert "s64[16,1024,1000000]" not in hlo and "[16384,1000000]" not in hlo
