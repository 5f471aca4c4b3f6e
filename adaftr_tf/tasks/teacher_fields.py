"""A linear teacher read through the fields that carry its relatedness.

A linear relatedness network (`model.relatedness_units=()`) reading the
field embeddings is a sum of per-field parts: `f(x) = b + sum_j c_j(x)`,
`c_j = <x_j, w_j>` for field j's embedding `x_j` `[D]` and its block `w_j` of
the kernel. Learned from the conversion labels, such a gate also puts small
weights on fields that do not enter the relatedness (estimation noise,
consistent per instance, which the student then aligns on). Pruning reads
the gate through the fields whose share of its logit's variance over the
batch, `var(c_j) / sum_k var(c_k)`, is at least `min_share`; the others'
parts are dropped: a student's teacher (`loss.teacher_field_share`) or the
run's own linear gate (`loss.gate_field_share`; AlignmentTask reads both
through `pruned_logit`). Like the gate's map onto tau
(tasks/transfer_gate.py) the shares are the batch's.
"""

from __future__ import annotations

import tensorflow as tf


def field_parts(x: tf.Tensor, kernel: tf.Tensor,
                num_fields: int) -> tf.Tensor:
  """Per-field parts `c` `[batch, F]` of a linear logit: `c[:, j] =
  <x_j, w_j>` for embeddings `x` `[batch, F*D]` and a kernel `[F*D]` (or
  `[F*D, 1]`) in the same field-major order."""
  x = tf.cast(x, tf.float32)
  width = x.shape[-1]
  if width is None or width % num_fields:
    raise ValueError(f"embeddings of width {width} do not split into "
                     f"{num_fields} fields")
  dim = width // num_fields
  blocks = tf.reshape(tf.cast(kernel, tf.float32), [num_fields, dim])
  return tf.reduce_sum(tf.reshape(x, [-1, num_fields, dim]) * blocks, axis=-1)


def field_shares(parts: tf.Tensor) -> tf.Tensor:
  """Each field's share `[F]` of the variance of the batch's logits' parts
  `[batch, F]` (sums to 1; all 0 when no part varies)."""
  variances = tf.math.reduce_variance(parts, axis=0)
  return tf.math.divide_no_nan(variances, tf.reduce_sum(variances))


def pruned_logit(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor,
                 num_fields: int, min_share: float) -> tf.Tensor:
  """The linear logit `[batch]` from the fields whose variance share in the
  batch is at least `min_share` (0: every field, the plain logit)."""
  parts = field_parts(x, kernel, num_fields)
  if min_share > 0.0:
    keep = tf.cast(field_shares(parts) >= min_share, parts.dtype)
    parts = parts * keep
  return tf.reduce_sum(parts, axis=-1) + tf.reshape(
      tf.cast(bias, tf.float32), [])
