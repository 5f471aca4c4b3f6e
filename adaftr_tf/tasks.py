"""Loss and metric bundles, one per objective (TFRS Task style).

* `ranking_task(prefix)`: a `tfrs.tasks.Ranking` over logits with a per-example
  BCE (reduction NONE, so the model averages over the *global* batch under
  tf.distribute), AUC and log loss metrics named `{prefix}_auc`,
  `{prefix}_logloss`.
* `ContrastiveTask`: the adaptive-temperature InfoNCE with in-batch negatives
  gathered across replicas (or one random negative), plus `cl_loss` and `tau`
  statistics as metrics.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from adaftr_tf.keras_metrics import BucketedAUC
from adaftr_tf.losses import info_nce, random_negative_info_nce
from adaftr_tf.losses import symmetric_in_batch_info_nce

NEGATIVES = ("in_batch", "random_one")

# The local-batch symmetric InfoNCE, compiled by XLA: the divides, exps and
# reductions over the [b, b] similarities fuse into a few loops (the loss and
# its gradient take ~0.7x the time of the uncompiled graph at b = 2048 on CPU).
in_batch_symmetric_loss = tf.function(symmetric_in_batch_info_nce,
                                      jit_compile=True)

# AUC thresholds spread uniformly in logit space: CTCVR probabilities sit far
# below 0.01, where Keras's default linear thresholds have no resolution.
_AUC_THRESHOLDS = list(1.0 / (1.0 + np.exp(-np.linspace(-16.0, 10.0, 999))))


def ranking_task(prefix: str) -> tfrs.tasks.Ranking:
  """Per-example BCE from logits `[batch, 1]` with AUC and log loss metrics."""
  return tfrs.tasks.Ranking(
      loss=tf_keras.losses.BinaryCrossentropy(
          from_logits=True, reduction=tf_keras.losses.Reduction.NONE),
      metrics=[
          BucketedAUC(thresholds=_AUC_THRESHOLDS, from_logits=True,
                      name=f"{prefix}_auc"),
          tf_keras.metrics.BinaryCrossentropy(from_logits=True,
                                              name=f"{prefix}_logloss"),
      ],
      name=f"{prefix}_task")


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
    if negatives not in NEGATIVES:
      raise ValueError(f"negatives={negatives!r}; valid: {NEGATIVES}")
    self.symmetric = symmetric
    self.negatives = negatives
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
    """u, v: `[b, p]` L2-normalised; tau: `[b]`. Returns per-example `[b]`."""
    if self.negatives == "random_one":
      step_seed = 0 if step is None else step
      loss = random_negative_info_nce(u, v, tau, seed=(self.seed, step_seed))
      if self.symmetric:
        loss = 0.5 * (loss + random_negative_info_nce(
            v, u, tau, seed=(self.seed, step_seed)))
    elif self.symmetric and not self._gathers():
      loss = in_batch_symmetric_loss(u, v, tau)   # one shared u v^T
    else:
      u_all, v_all, positive = self._candidates(u, v)
      loss = info_nce(u, v_all, tau, positive)
      if self.symmetric:
        loss = 0.5 * (loss + info_nce(v, u_all, tau, positive))
    self.loss_tracker.update_state(loss)
    self.tau_tracker.update_state(tau)
    return loss

  def get_config(self):
    return {**super().get_config(), "symmetric": self.symmetric,
            "negatives": self.negatives, "cross_replica": self.cross_replica,
            "seed": self.seed}
