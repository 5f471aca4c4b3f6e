"""The adaptive-temperature InfoNCE between the CTR and CVR representations."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from adaftr_tf import choices
from adaftr_tf import xla
from adaftr_tf.losses import info_nce
from adaftr_tf.losses import random_negative_info_nce
from adaftr_tf.losses import symmetric_in_batch_info_nce

# The local-batch symmetric InfoNCE, compiled by XLA: the divides, exps and
# reductions over the [b, b] similarities fuse into a few loops (inlined into
# an XLA-compiled train step rather than nested in it: adaftr_tf/xla.py).
_in_batch_symmetric_loss = xla.compiled(symmetric_in_batch_info_nce)


class ContrastiveTask(tf_keras.layers.Layer):
  """Adaptive InfoNCE between CTR and CVR representations.

  Per instance i with temperature tau_i:
    L_cl_i = -log( exp(u_i.v_i / tau_i) / sum_j exp(u_i.v_j / tau_i) )
  (averaged with the v->u direction when `symmetric`). With `in_batch`
  negatives, j runs over the whole *global* batch: under a synchronous
  tf.distribute strategy the candidates are all-gathered from every replica
  (`cross_replica=True`), so N replicas x b rows give the same loss and
  gradients as one device with N*b rows.

  Args:
    symmetric: average both directions.
    negatives: `in_batch` or `random_one` (one random other instance).
    cross_replica: gather negatives across replicas (else local batch only).
    seed: seed of the random negative.
  """

  def __init__(self, symmetric: bool = True, negatives: str = "in_batch",
               cross_replica: bool = True, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.symmetric = symmetric
    self.negatives = choices.check("negatives", negatives, choices.Negatives)
    self.cross_replica = cross_replica
    self.seed = seed
    self.loss_tracker = tf_keras.metrics.Mean(name="cl_loss")
    self.tau_tracker = tf_keras.metrics.Mean(name="tau_mean")

  def _gathers(self) -> bool:
    """Whether the negatives come from other replicas too."""
    context = tf.distribute.get_replica_context()
    return (self.cross_replica and context is not None
            and context.num_replicas_in_sync > 1)

  def _candidates(self, u, v):
    """Returns (u_all, v_all, positive_index) for the local rows."""
    batch = tf.shape(u)[0]
    if not self._gathers():
      return u, v, tf.range(batch)
    context = tf.distribute.get_replica_context()
    u_all = context.all_gather(u, axis=0)
    v_all = context.all_gather(v, axis=0)
    # Replica k's rows start after those of replicas 0..k-1; their batches
    # may differ (a last partial global batch splits unevenly).
    sizes = context.all_gather(tf.shape(u)[:1], axis=0)   # [replicas]
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    offset = tf.reduce_sum(sizes[:replica])
    return u_all, v_all, tf.range(batch) + offset

  def call(self, u, v, tau, step=None):
    """u, v: `[b, p]` L2-normalised; tau: `[b]`. Returns per-example `[b]`
    (`loss`, with the loss and tau metrics updated)."""
    loss = self.loss(u, v, tau, step=step)
    self.loss_tracker.update_state(loss)
    self.tau_tracker.update_state(tau)
    return loss

  def loss(self, u, v, tau, step=None, gather: bool = True):
    """Per-example InfoNCE `[b]`, no metric updated; `gather=False` keeps
    the negatives in the local rows whatever the strategy."""
    gathers = gather and self._gathers()
    if self.negatives == "random_one":
      step_seed = 0 if step is None else step
      loss = random_negative_info_nce(u, v, tau, seed=(self.seed, step_seed))
      if self.symmetric:
        loss = 0.5 * (loss + random_negative_info_nce(
            v, u, tau, seed=(self.seed, step_seed)))
    elif self.symmetric and not gathers:
      loss = self.local_symmetric_loss(u, v, tau)
    else:
      u_all, v_all, positive = (self._candidates(u, v) if gathers
                                else (u, v, None))
      loss = info_nce(u, v_all, tau, positive)
      if self.symmetric:
        loss = 0.5 * (loss + info_nce(v, u_all, tau, positive))
    return loss

  def local_symmetric_loss(self, u, v, tau):
    """Both in-batch directions on one replica `[b]`: one shared u v^T,
    XLA-compiled (losses/info_nce.py `symmetric_in_batch_info_nce`)."""
    return _in_batch_symmetric_loss(u, v, tau)

  def get_config(self):
    return {**super().get_config(), "symmetric": self.symmetric,
            "negatives": self.negatives, "cross_replica": self.cross_replica,
            "seed": self.seed}
