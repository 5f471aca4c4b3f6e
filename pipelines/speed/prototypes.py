"""Opt-in prototypes of real-path speed changes, applied by monkeypatching.

They exist to *measure* proposed changes to the library before anyone makes
them (`--prototypes=` of pipelines.benchmark_speed); nothing here is used by
training. Each prototype patches module attributes and is undone by the
function `apply` returns.

  lazy_adam  Adam that updates only the embedding rows in the batch (and
             their slots) for sparse gradients, like TF1's LazyAdam; tf_keras
             Adam decays both slots and rewrites every row every step.
  fast_auc   AUC whose update bins each prediction among the sorted
             thresholds (`searchsorted`, O(batch log T)) instead of comparing
             it with every threshold (O(batch x T) with T = 1001 here).
  fused_info_nce  symmetric in-batch InfoNCE from ONE similarity matrix:
             the v->u direction is the column-wise log-sum-exp of the same
             u.v^T (one matmul and its gradient instead of two).
  no_metrics the ranking tasks skip their metric updates (measures what the
             AUC / log-loss metrics cost; not a proposal by itself).
"""

from __future__ import annotations

from typing import Callable, Iterable

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from adaftr_tf import models
from adaftr_tf import tasks

PROTOTYPES = ("lazy_adam", "fast_auc", "fused_info_nce", "no_metrics")


class LazyAdam(tf_keras.optimizers.Adam):
  """Adam whose sparse updates touch only the rows present in the gradient.

  For an `IndexedSlices` gradient g on rows R (deduplicated by the base
  optimizer): m[R] = b1 m[R] + (1 - b1) g, v[R] = b2 v[R] + (1 - b2) g^2,
  w[R] -= alpha m[R] / (sqrt(v[R]) + eps); other rows and their slots are left
  alone (their moments are not decayed: the "lazy" approximation). Dense
  gradients take the ordinary Adam update.
  """

  def update_step(self, gradient, variable):
    if not isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable)
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    alpha = (tf.cast(self.learning_rate, dtype)
             * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step)))
    index = self._index_dict[self._var_key(variable)]
    m, v = self._momentums[index], self._velocities[index]
    rows, values = gradient.indices, gradient.values
    m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
    v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
    m.scatter_update(tf.IndexedSlices(m_rows, rows))
    v.scatter_update(tf.IndexedSlices(v_rows, rows))
    variable.scatter_sub(tf.IndexedSlices(
        alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


class FastAUC(tf_keras.metrics.AUC):
  """tf_keras AUC (single label) with an O(batch log T) update.

  Keras's update for unevenly spaced thresholds tiles predictions against all
  T thresholds. Here each prediction p gets k = #(thresholds < p) by
  `searchsorted`; per-bucket label weights then give, for every threshold t,
  TP[t] = sum of positive weight with k > t (a reverse cumulative sum), and
  FN, FP, TN likewise. Same variables, hence the same `result()`.
  """

  def update_state(self, y_true, y_pred, sample_weight=None):
    if self.multi_label or self.label_weights is not None:
      return super().update_state(y_true, y_pred, sample_weight)
    y_pred = tf.reshape(tf.cast(y_pred, self.dtype), [-1])
    if self._from_logits:
      y_pred = tf.sigmoid(y_pred)
    y_true = tf.reshape(tf.cast(y_true, self.dtype), [-1])
    weight = tf.ones_like(y_pred)
    if sample_weight is not None:  # [b] or [b, 1] (or a scalar)
      sample_weight = tf.cast(sample_weight, self.dtype)
      if sample_weight.shape.rank:
        sample_weight = tf.reshape(sample_weight, [-1])
      weight *= sample_weight
    thresholds = tf.constant(self._thresholds, self.dtype)
    buckets = tf.searchsorted(thresholds, y_pred, side="left")
    size = self.num_thresholds + 1
    positive = tf.math.unsorted_segment_sum(weight * y_true, buckets, size)
    negative = tf.math.unsorted_segment_sum(weight * (1 - y_true), buckets,
                                            size)
    # Above threshold t: buckets t + 1 .. T.
    tp = tf.cumsum(positive, reverse=True)[1:]
    fp = tf.cumsum(negative, reverse=True)[1:]
    return tf.group(
        self.true_positives.assign_add(tp),
        self.false_positives.assign_add(fp),
        self.false_negatives.assign_add(tf.reduce_sum(positive) - tp),
        self.true_negatives.assign_add(tf.reduce_sum(negative) - fp))


def _fast_ranking_task(prefix: str) -> tfrs.tasks.Ranking:
  task = tasks.ranking_task(prefix)
  swapped = []
  for metric in task._ranking_metrics:   # pylint: disable=protected-access
    if isinstance(metric, tf_keras.metrics.AUC):
      metric = FastAUC(thresholds=list(tasks._AUC_THRESHOLDS),
                       from_logits=True, name=metric.name)
    swapped.append(metric)
  task._ranking_metrics = swapped        # pylint: disable=protected-access
  return task


def _lazy_build_optimizer(config):
  if config.train.optimizer == "adam":
    return LazyAdam(config.train.learning_rate)
  return _ORIGINAL["build_optimizer"](config)


_ORIGINAL = {"build_optimizer": models.build_optimizer,
             "ranking_task": models.ranking_task,
             "ranking_call": tfrs.tasks.Ranking.call,
             "contrastive_call": tasks.ContrastiveTask.call}


def _fused_contrastive_call(self, u, v, tau, step=None):
  """ContrastiveTask.call with one similarity matrix (same loss, same grads).

  S = u v^T `[b, b]`; u->v: lse_j(S_ij / tau_i) - S_ii / tau_i;
  v->u: lse_j(S_ji / tau_i) - S_ii / tau_i (column i of the same S).
  """
  context = tf.distribute.get_replica_context()
  replicas = 1 if context is None else context.num_replicas_in_sync
  if (self.negatives != "in_batch" or not self.symmetric
      or (self.cross_replica and replicas > 1)):
    return _ORIGINAL["contrastive_call"](self, u, v, tau, step=step)
  u, v, tau = (tf.cast(x, tf.float32) for x in (u, v, tau))
  s = tf.matmul(u, v, transpose_b=True)
  loss = (0.5 * (tf.reduce_logsumexp(s / tau[:, None], axis=1)
                 + tf.reduce_logsumexp(s / tau[None, :], axis=0))
          - tf.linalg.diag_part(s) / tau)
  self.loss_tracker.update_state(loss)
  self.tau_tracker.update_state(tau)
  return loss


def _no_metrics_call(self, labels, predictions, sample_weight=None,
                     training=False, compute_metrics=True):
  del compute_metrics
  return _ORIGINAL["ranking_call"](self, labels, predictions, sample_weight,
                                   training, compute_metrics=False)


def apply(names: Iterable[str]) -> Callable[[], None]:
  """Applies the named prototypes; returns the function that undoes them.

  Raises:
    ValueError: an unknown name (the valid ones are listed).
  """
  names = list(names)
  unknown = [n for n in names if n not in PROTOTYPES]
  if unknown:
    raise ValueError(f"unknown prototype(s) {unknown}; valid: {PROTOTYPES}")
  if "lazy_adam" in names:
    models.build_optimizer = _lazy_build_optimizer
  if "fast_auc" in names:
    models.ranking_task = _fast_ranking_task
  if "fused_info_nce" in names:
    tasks.ContrastiveTask.call = _fused_contrastive_call
  if "no_metrics" in names:
    tfrs.tasks.Ranking.call = _no_metrics_call

  def restore():
    models.build_optimizer = _ORIGINAL["build_optimizer"]
    models.ranking_task = _ORIGINAL["ranking_task"]
    tfrs.tasks.Ranking.call = _ORIGINAL["ranking_call"]
    tasks.ContrastiveTask.call = _ORIGINAL["contrastive_call"]

  return restore
