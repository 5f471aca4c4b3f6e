"""The meta-gradient relatedness signal (relatedness_signal=meta_gradient).

tau_i is treated as a hyperparameter of the alignment (first order, in the
style of learning-to-reweight and Meta-Weight-Net; candidate B of
../shared/research-relatedness-signals.md). With theta the model's shared
parameters and a virtual SGD step on the alignment,
  theta' = theta - eta * grad_theta(lambda * L_cl(theta; tau)),
a held-out conversion loss L_meta changes to first order by
  L_meta(theta') - L_meta(theta) = -eta * lambda * s . grad_theta L_cl(theta; tau),
  s = stop_gradient(grad_theta L_meta(theta)),
so the relatedness network phi is trained on
  R(phi) = -weight * lambda * M(tau(phi)),   M(tau) = s . grad_theta L_cl(theta; tau),
over phi only: tau moves where the alignment's gradient agrees with the
held-out conversion gradient (eta is left to phi's optimizer).

Held-out batch: each step the local batch is split in two. The first half
(the meta rows) gives L_meta, the CVR BCE on its clicked rows (conversion
labels among clicks; the second task's BCE on every row for independent
tasks); the second half (the alignment rows, A) gives L_cl = the mean over A
of the InfoNCE among A's own rows (the contrastive task's form, local
negatives). Training batches are shuffled, so the split is a fresh random
one each step; phi pools the noisy per-step signal across instances (no
moving average of s: it would be one more copy of every shared variable).

The directional derivative is computed without per-instance gradients and
without a second forward pass: M(tau) = sum_k g_k(tau) . dh_k, with h the
two towers' representations `[b, d]` (what the alignment reads; tau only
enters after them), g = dL_cl/dh and dh = J s the change of h along s
(J = dh/dtheta). dh comes from the model's own forward pass, recorded on a
tape, by the double-backward identity J s = d/dw [s . J^T w] (J^T w is one
backward pass, linear in the cotangent w; its gradient with respect to w is
a second, linear one); g and dM/dtau_i are small `[b, d]` computations.
Cost: the backward of L_meta (for s) plus those two passes, about 0.9 of an
AdaFTR step where it runs (`loss.meta_gradient_every` runs it on every k-th
step only; pipelines/benchmarks/speed paired entries `meta_gradient*`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Sequence

import tensorflow as tf

from adaftr_tf.losses import bce_with_logits


@dataclasses.dataclass
class Recording:
  """The model's forward pass, recorded for the meta-gradient.

  Attributes:
    tape: a persistent GradientTape that recorded the forward pass from the
      embedding lookup to the outputs (closed), watching every variable it
      read.
    variables: theta, the shared variables (the model's trainable variables
      except the objectives' own: projection heads, relatedness network);
      set after the forward pass, which may create them.
  """

  tape: tf.GradientTape
  variables: Sequence[tf.Variable] = ()


@contextlib.contextmanager
def recording():
  """Records what runs inside on a persistent tape; yields a `Recording`."""
  with tf.GradientTape(persistent=True) as tape:
    yield Recording(tape)


def meta_rows(batch_size: tf.Tensor) -> tf.Tensor:
  """`[batch]` float32 mask of the meta rows: the first half (b // 2)."""
  return tf.cast(tf.range(batch_size) < batch_size // 2, tf.float32)


def meta_loss(cvr_logit: tf.Tensor, observed: tf.Tensor, label: tf.Tensor,
              rows: tf.Tensor) -> tf.Tensor:
  """L_meta: the mean BCE of `label` on the rows where `observed * rows` is 1
  (the funnel: clicked meta rows, conversion labels), 0 if there are none.

  Args:
    cvr_logit: `[batch]` the CVR (second task's) logit b.
    observed: `[batch]` click (the funnel) or ones (independent tasks).
    label: `[batch]` conversion (or the second task's label).
    rows: `[batch]` the meta-row mask (`meta_rows`).

  Returns:
    scalar float32.
  """
  weight = tf.cast(observed, tf.float32) * rows
  return tf.math.divide_no_nan(
      tf.reduce_sum(weight * bce_with_logits(label, cvr_logit)),
      tf.reduce_sum(weight))


def _dense(gradient) -> tf.Tensor:
  return tf.stop_gradient(tf.convert_to_tensor(gradient, tf.float32))


def _dot(direction: tf.Tensor, gradient) -> tf.Tensor:
  """direction . gradient (dense `direction`, dense or IndexedSlices
  `gradient` of the same variable)."""
  if isinstance(gradient, tf.IndexedSlices):
    return tf.reduce_sum(tf.gather(direction, gradient.indices)
                         * tf.cast(gradient.values, tf.float32))
  return tf.reduce_sum(direction * tf.cast(gradient, tf.float32))


def tangents(record: Recording, held_out: Callable[[], tf.Tensor],
             representations: Sequence[tf.Tensor]) -> list[tf.Tensor]:
  """dh = J s for each recorded representation h `[batch, d]`, with
  s = stop_gradient(grad_theta L_meta), L_meta = `held_out()` (computed from
  recorded tensors, on the resumed tape) and J = dh/dtheta (float32,
  `[batch, d]` each; zeros where no variable reaches both)."""
  with record.tape:   # resumes the recording for L_meta
    loss = held_out()
  grads = record.tape.gradient(loss, record.variables)
  pairs = [(v, _dense(g)) for v, g in zip(record.variables, grads)
           if g is not None]
  if not pairs:
    return [tf.zeros_like(h, tf.float32) for h in representations]
  cotangents = [tf.zeros_like(h) for h in representations]
  with tf.GradientTape() as outer:
    outer.watch(cotangents)
    backward = record.tape.gradient(
        representations, [v for v, _ in pairs], output_gradients=cotangents)
    inner = tf.add_n([_dot(s, g) for (_, s), g in zip(pairs, backward)
                      if g is not None])
  return [tf.zeros_like(h, tf.float32) if t is None
          else tf.cast(t, tf.float32)
          for h, t in zip(representations,
                          outer.gradient(inner, cotangents))]


def hypergradient(alignment_loss: Callable[..., tf.Tensor],
                  representations: Sequence[tf.Tensor],
                  directions: Sequence[tf.Tensor], tau: tf.Tensor):
  """(M, dM/dtau): the directional derivative of the alignment loss along
  the tangents and its gradient with respect to each tau_i.

  Args:
    alignment_loss: (h_ctr, h_cvr, tau) -> scalar L_cl (differentiable).
    representations: h_ctr, h_cvr `[n, d]` of the alignment rows.
    directions: their tangents dh `[n, d]` (`tangents`).
    tau: `[n]` the alignment rows' temperatures.

  Returns:
    (M scalar, `[n]` dM/dtau), both stop-gradient.
  """
  representations = [tf.stop_gradient(tf.cast(h, tf.float32))
                     for h in representations]
  tau = tf.stop_gradient(tau)
  with tf.GradientTape() as outer:
    outer.watch(tau)
    with tf.GradientTape() as inner:
      inner.watch(representations)
      loss = alignment_loss(*representations, tau)
    slopes = inner.gradient(loss, representations)
    value = tf.add_n([tf.reduce_sum(g * d)   # (h_ctr has none if one-way)
                      for g, d in zip(slopes, directions) if g is not None])
  gradient = outer.gradient(value, tau)
  if gradient is None:
    gradient = tf.zeros_like(tau)
  return tf.stop_gradient(value), tf.stop_gradient(gradient)


def surrogate(value: tf.Tensor, gradient: tf.Tensor,
              tau: tf.Tensor) -> tf.Tensor:
  """A scalar equal to `value` whose gradient is sum_i gradient_i dtau_i:
  `value + sum_i gradient_i (tau_i - stop_gradient(tau_i))`, so the
  gradient reaches tau's network and nothing the value was computed from."""
  return tf.stop_gradient(value) + tf.reduce_sum(
      tf.stop_gradient(gradient) * (tau - tf.stop_gradient(tau)))
