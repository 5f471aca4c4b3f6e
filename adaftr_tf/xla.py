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
