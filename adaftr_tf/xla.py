"""XLA helpers: whether a traced graph is XLA-compiled, and functions compiled
on their own only where the caller is not.

A `tf.function(jit_compile=True)` called inside an XLA-compiled step (Keras's
train step under `runtime.jit_compile`) is compiled as a nested call. When the
gradient of such a call needs a value of the forward pass at compile time (the
shape arguments of `tf.linalg.diag_part`'s gradient, for one), XLA marks every
input of the call as a compile-time constant, and backwards from there every
variable the inputs were computed from: the step's weights become part of the
compilation cache key, and the step is recompiled on every call (issue 16:
~100x slower). `compiled` inlines the function in an XLA context instead.
"""

from __future__ import annotations

import functools
from typing import Callable

import tensorflow as tf


def in_xla_context() -> bool:
  """Whether the graph being traced is compiled by XLA (a `jit_compile`
  function, e.g. Keras's train step under `runtime.jit_compile`)."""
  from tensorflow.python.ops import control_flow_util  # no public API
  return control_flow_util.GraphOrParentsInXlaContext(
      tf.compat.v1.get_default_graph())


def compiled(fn: Callable) -> Callable:
  """`fn` XLA-compiled on its own (`tf.function(jit_compile=True)`) when
  called outside XLA (eagerly or in a plain graph), and `fn` itself, traced
  into the caller's compilation, when called inside an XLA-compiled graph."""
  jit = tf.function(fn, jit_compile=True)

  @functools.wraps(fn)
  def call(*args, **kwargs):
    return (fn if in_xla_context() else jit)(*args, **kwargs)

  return call


def searchsorted(sorted_sequence: tf.Tensor, values: tf.Tensor,
                 side: str = "left") -> tf.Tensor:
  """`tf.searchsorted` of any-shape `values` in a 1-D `sorted_sequence` `[n]`;
  int64 indices in [0, n] of `values`' shape.

  Inside an XLA-compiled graph it is a binary search of ceil(log2(n + 1))
  gathers and compares (O(size(values) log n)): XLA's own LowerBound and
  UpperBound compare every value with every element of the sequence
  (O(size(values) n) time and memory: 16 fields x 1,024 ids take ~1 s at
  n = 10^5, and 122 GiB, so an out-of-memory error, at n = 10^6). Elsewhere
  it is `tf.searchsorted` itself (a native binary search).
  """
  if side not in ("left", "right"):
    raise ValueError(f"side must be 'left' or 'right', got {side!r}")
  sorted_sequence = tf.convert_to_tensor(sorted_sequence)
  values = tf.convert_to_tensor(values, sorted_sequence.dtype)
  if sorted_sequence.shape.rank != 1:
    raise ValueError("sorted_sequence must be 1-D, got shape "
                     f"{sorted_sequence.shape}")
  if not in_xla_context():
    return tf.reshape(tf.searchsorted(
        sorted_sequence, tf.reshape(values, [-1]), side=side,
        out_type=tf.int64), tf.shape(values, out_type=tf.int64))
  n = sorted_sequence.shape[0]
  if n is None:
    raise ValueError("under XLA the sorted sequence needs a static length")
  # Go right of element e: e < value (left), not value < e (right); as
  # std::lower_bound / upper_bound, hence tf.searchsorted, even for NaN.
  if side == "left":
    goes_right = lambda element: element < values
  else:
    goes_right = lambda element: ~(values < element)
  low = tf.zeros_like(values, tf.int64)
  high = tf.fill(tf.shape(values), tf.constant(n, tf.int64))
  for _ in range(int(n).bit_length()):   # halves every interval [low, high)
    middle = (low + high) // 2
    right = goes_right(tf.gather(sorted_sequence, tf.minimum(middle, n - 1)))
    open_ = low < high
    low = tf.where(open_ & right, middle + 1, low)
    high = tf.where(open_ & ~right, middle, high)
  return low
