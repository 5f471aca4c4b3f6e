"""InfoNCE between CTR and CVR representations with per-anchor temperatures.

All functions are pure, compute in float32 and return per-example losses [b];
the caller reduces (and scales by the contrastive weight lambda).
"""

import tensorflow as tf


def _as_f32(x):
  return tf.cast(tf.convert_to_tensor(x), tf.float32)


def info_nce(anchors, candidates, tau, positive_index=None):
  """InfoNCE with an anchor-specific temperature.

  `logits_ij = (anchors_i . candidates_j) / tau_i`,
  `loss_i = -log( exp(logits_{i, p_i}) / sum_j exp(logits_ij) )`,
  evaluated as a sparse softmax cross-entropy (log-sum-exp), so it stays finite
  for tiny tau (1e-4) and unnormalised inputs.

  Args:
    anchors: [b, d], normally L2-normalised.
    candidates: [n, d], normally L2-normalised; under tf.distribute the
      all-gathered candidates of every replica.
    tau: [b] positive temperatures.
    positive_index: [b] int32 index of each anchor's positive in
      `candidates`; defaults to `tf.range(b)` (then n >= b is required).

  Returns:
    [b] float32 loss.

  Raises:
    ValueError: if the static shapes are inconsistent.
  """
  anchors = _as_f32(anchors)
  candidates = _as_f32(candidates)
  tau = _as_f32(tau)
  if anchors.shape.rank != 2 or candidates.shape.rank != 2:
    raise ValueError("anchors and candidates must be rank 2 ([b, d], [n, d]), "
                     f"got shapes {anchors.shape} and {candidates.shape}")
  if positive_index is None:
    b, n = anchors.shape[0], candidates.shape[0]
    if b is not None and n is not None and n < b:
      raise ValueError("positive_index=None needs candidates n >= anchors b, "
                       f"got n={n}, b={b}")
    positive_index = tf.range(tf.shape(anchors)[0], dtype=tf.int32)
  logits = (tf.matmul(anchors, candidates, transpose_b=True) /
            tf.expand_dims(tau, -1))
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(positive_index, tf.int32), logits=logits)


def symmetric_info_nce(u, v_candidates, v, u_candidates, tau,
                       positive_index=None):
  """Average of the u->v and v->u InfoNCE losses.

  `loss_i = 0.5 * (info_nce(u, v_candidates, tau)_i +
  info_nce(v, u_candidates, tau)_i)`.

  Args:
    u: [b, d] CTR-side anchors. v_candidates: [n, d] CVR-side candidates.
    v: [b, d] CVR-side anchors. u_candidates: [n, d] CTR-side candidates.
      (In one process the candidates are simply v and u.)
    tau: [b] temperatures. positive_index: [b] int32 or None, as info_nce.

  Returns:
    [b] float32 loss.
  """
  return 0.5 * (info_nce(u, v_candidates, tau, positive_index) +
                info_nce(v, u_candidates, tau, positive_index))


def symmetric_in_batch_info_nce(u, v, tau):
  """`symmetric_info_nce(u, v, v, u, tau)` from ONE similarity matrix.

  With `S = u v^T` `[b, b]`: the u->v logits of anchor i are row i of S and
  the v->u logits (`v_i . u_j = S_ji`) are column i, both over tau_i, so
  `loss_i = 0.5 * (lse_j(S_ij / tau_i) + lse_j(S_ji / tau_i)) - S_ii / tau_i`.
  One matmul (and its gradient) instead of two; same values and gradients.
  The positives `S_ii` are the row-wise dots `u_i . v_i` (`[b]`): not the
  diagonal of S, whose gradient builds a `[b, b]` matrix from S's shape (and
  inside a nested XLA call makes every input a compile-time constant:
  adaftr_tf/xla.py).

  Args:
    u: [b, d] CTR-side, v: [b, d] CVR-side (row i of each is a positive
      pair; the other rows are the negatives). tau: [b] temperatures.

  Returns:
    [b] float32 loss.
  """
  u, v, tau = _as_f32(u), _as_f32(v), _as_f32(tau)
  if u.shape.rank != 2 or v.shape.rank != 2:
    raise ValueError(f"u and v must be rank 2 ([b, d]), got shapes {u.shape} "
                     f"and {v.shape}")
  s = tf.matmul(u, v, transpose_b=True)
  return (0.5 * (tf.reduce_logsumexp(s / tau[:, None], axis=1)
                 + tf.reduce_logsumexp(s / tau[None, :], axis=0))
          - tf.reduce_sum(u * v, axis=1) / tau)


def random_negative_indices(batch_size, seed):
  """Picks for every row i one other row `j_i != i` of the batch.

  `j_i = (i + s_i) mod b` with `s_i` uniform in [1, b - 1] drawn by
  `tf.random.stateless_uniform` with seed `(seed, 0)` (or the pair itself):
  deterministic for a seed, and never i itself (for b >= 2).

  Args:
    batch_size: b, Python int or scalar int tensor.
    seed: int / scalar int tensor, or a pair `(seed, step)` of them; vary it
      per step (e.g. with the optimizer's iteration count) to draw new
      negatives.

  Raises:
    ValueError: if `seed` is neither a scalar nor a pair.

  Returns:
    [b] int32 indices.
  """
  b = tf.cast(batch_size, tf.int32)
  if isinstance(seed, (tuple, list)):
    seed = tf.stack([tf.cast(s, tf.int64) for s in seed])
  seed = tf.cast(seed, tf.int64)
  if seed.shape.rank == 0:
    stateless_seed = tf.stack([seed, tf.constant(0, tf.int64)])
  elif seed.shape.as_list() == [2]:
    stateless_seed = seed
  else:
    raise ValueError("seed must be an int or a pair of ints, got shape "
                     f"{seed.shape}")
  # maxval max(b, 2) keeps the op valid for b == 1, where no other row exists.
  shift = tf.random.stateless_uniform([b], seed=stateless_seed, minval=1,
                                      maxval=tf.maximum(b, 2), dtype=tf.int32)
  return tf.math.floormod(tf.range(b, dtype=tf.int32) + shift, b)


def random_negative_info_nce(anchors, candidates, tau, seed):
  """InfoNCE with one positive and ONE random in-batch negative (ablation).

  With `j_i = random_negative_indices(b, seed)_i` and
  `l_pos = a_i . c_i / tau_i`, `l_neg = a_i . c_{j_i} / tau_i`:
  `loss_i = -log(exp(l_pos) / (exp(l_pos) + exp(l_neg)))
          = softplus(l_neg - l_pos)`.

  Args:
    anchors: [b, d]. candidates: [b, d], row i is anchor i's positive.
    tau: [b] temperatures. seed: int or `(seed, step)` pair, see
      `random_negative_indices`. Needs b >= 2.

  Returns:
    [b] float32 loss.
  """
  anchors = _as_f32(anchors)
  candidates = _as_f32(candidates)
  tau = _as_f32(tau)
  negatives = tf.gather(candidates,
                        random_negative_indices(tf.shape(anchors)[0], seed))
  pos = tf.reduce_sum(anchors * candidates, axis=-1) / tau
  neg = tf.reduce_sum(anchors * negatives, axis=-1) / tau
  return tf.nn.softplus(neg - pos)
