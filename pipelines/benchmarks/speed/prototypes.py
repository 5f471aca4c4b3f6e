"""Opt-in measurement patches of the real path, applied by monkeypatching.

They exist to *measure* what a part of the library costs or saved
(`--prototypes=` and the paired row of pipelines.benchmark_speed); nothing
here is used by training. Each patch replaces module attributes and is undone
by the function `apply` returns.

  keras_auc        the ranking tasks use tf_keras AUC (O(batch x T) update,
                   T = 1001) instead of the library's BucketedAUC
                   (O(batch log T)): what adopting BucketedAUC saved.
  unfused_info_nce symmetric in-batch InfoNCE as two matmuls (one per
                   direction), uncompiled, instead of the XLA-compiled loss
                   with one shared u v^T: what both changes saved.
  uncompiled_info_nce  the fused loss without XLA: what XLA saved.
  no_metrics       the ranking tasks skip their metric updates (what the AUC
                   and log-loss metrics cost; not a proposal by itself).
"""

from __future__ import annotations

from typing import Callable, Iterable

import tensorflow_recommenders as tfrs
import tf_keras

from adaftr_tf import keras_metrics
from adaftr_tf import losses
from adaftr_tf import models
from adaftr_tf import tasks

PROTOTYPES = ("keras_auc", "unfused_info_nce", "uncompiled_info_nce",
              "no_metrics")


def _keras_auc_ranking_task(prefix: str) -> tfrs.tasks.Ranking:
  task = tasks.ranking_task(prefix)
  swapped = []
  for metric in task._ranking_metrics:   # pylint: disable=protected-access
    if isinstance(metric, keras_metrics.BucketedAUC):
      metric = tf_keras.metrics.AUC(thresholds=list(tasks._AUC_THRESHOLDS),
                                    from_logits=True, name=metric.name)
    swapped.append(metric)
  task._ranking_metrics = swapped        # pylint: disable=protected-access
  return task


def _unfused_symmetric_info_nce(u, v, tau):
  """Both directions with their own similarity matrix (u v^T and v u^T)."""
  return losses.symmetric_info_nce(u, v, v, u, tau)


_ORIGINAL = {"ranking_task": models.ranking_task,
             "ranking_call": tfrs.tasks.Ranking.call,
             "in_batch_loss": tasks.in_batch_symmetric_loss}


def _no_metrics_call(self, labels, predictions, sample_weight=None,
                     training=False, compute_metrics=True):
  del compute_metrics
  return _ORIGINAL["ranking_call"](self, labels, predictions, sample_weight,
                                   training, compute_metrics=False)


def apply(names: Iterable[str]) -> Callable[[], None]:
  """Applies the named patches; returns the function that undoes them.

  Raises:
    ValueError: an unknown name (the valid ones are listed).
  """
  names = list(names)
  unknown = [n for n in names if n not in PROTOTYPES]
  if unknown:
    raise ValueError(f"unknown prototype(s) {unknown}; valid: {PROTOTYPES}")
  if "keras_auc" in names:
    models.ranking_task = _keras_auc_ranking_task
  if "unfused_info_nce" in names:
    tasks.in_batch_symmetric_loss = _unfused_symmetric_info_nce
  if "uncompiled_info_nce" in names:
    tasks.in_batch_symmetric_loss = losses.symmetric_in_batch_info_nce
  if "no_metrics" in names:
    tfrs.tasks.Ranking.call = _no_metrics_call

  def restore():
    models.ranking_task = _ORIGINAL["ranking_task"]
    tfrs.tasks.Ranking.call = _ORIGINAL["ranking_call"]
    tasks.in_batch_symmetric_loss = _ORIGINAL["in_batch_loss"]

  return restore
