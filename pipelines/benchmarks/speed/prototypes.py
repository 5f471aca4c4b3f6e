"""Measurement variants of the model, built here from the library's parts.

They exist to *measure* what a part of the library costs or saved
(`--prototypes=` and the paired row of pipelines.benchmark_speed); training
never uses them. Each is a subclass of a library objective, swapped in when
the model is built (`build_model`); nothing is patched.

  keras_auc        the prediction tasks use tf_keras AUC (O(batch x T)
                   update, T = 1001) instead of the library's BucketedAUC
                   (O(batch log T)): what adopting BucketedAUC saved.
  unfused_info_nce symmetric in-batch InfoNCE as two matmuls (one per
                   direction), uncompiled, instead of the XLA-compiled loss
                   with one shared u v^T: what both changes saved.
  uncompiled_info_nce  the fused loss without XLA: what XLA saved.
  no_metrics       the prediction tasks skip their metric updates (what the
                   AUC and log-loss metrics cost; not a proposal by itself).
"""

from __future__ import annotations

from typing import Iterable

import tf_keras

from adaftr_tf import features as F
from adaftr_tf import losses
from adaftr_tf import models
from adaftr_tf import tasks

PROTOTYPES = ("keras_auc", "unfused_info_nce", "uncompiled_info_nce",
              "no_metrics")


class KerasAucFunnel(tasks.FunnelTask):
  """The funnel objective with tf_keras's own AUC metric."""

  def make_metrics(self, prefix):
    return [tf_keras.metrics.AUC(thresholds=list(tasks.AUC_THRESHOLDS),
                                 from_logits=True, name=f"{prefix}_auc"),
            *tasks.ranking_metrics(prefix)[1:]]


class NoMetricsFunnel(tasks.FunnelTask):
  """The funnel objective's losses without any metric update."""

  def call(self, labels, outputs):
    click = labels[F.CLICK][:, None]
    conversion = labels[F.CONVERSION][:, None]
    return (self.ctr_task(click, outputs[F.CTR_LOGIT][:, None],
                          compute_metrics=False),
            self.ctcvr_task(conversion, outputs[F.CTCVR_LOGIT][:, None],
                            compute_metrics=False))


class UnfusedContrastive(tasks.ContrastiveTask):
  """Both directions with their own similarity matrix (u v^T and v u^T)."""

  def local_symmetric_loss(self, u, v, tau):
    return losses.symmetric_info_nce(u, v, v, u, tau)


class UncompiledContrastive(tasks.ContrastiveTask):
  """The fused loss (one shared u v^T) without XLA."""

  def local_symmetric_loss(self, u, v, tau):
    return losses.symmetric_in_batch_info_nce(u, v, tau)


_CONTRASTIVE = {"unfused_info_nce": UnfusedContrastive,
                "uncompiled_info_nce": UncompiledContrastive}
_FUNNEL = {"keras_auc": KerasAucFunnel, "no_metrics": NoMetricsFunnel}


def check(names: Iterable[str]) -> list[str]:
  """The names, if all valid; ValueError lists the valid ones."""
  names = list(names)
  unknown = [n for n in names if n not in PROTOTYPES]
  if unknown:
    raise ValueError(f"unknown prototype(s) {unknown}; valid: {PROTOTYPES}")
  funnels = [n for n in names if n in _FUNNEL]
  contrastive = [n for n in names if n in _CONTRASTIVE]
  if len(funnels) > 1 or len(contrastive) > 1:
    raise ValueError(f"prototypes {names} replace the same part twice; "
                     "combine at most one of each of "
                     f"{sorted(_FUNNEL)} and {sorted(_CONTRASTIVE)}")
  return names


def build_model(config, schema, names: Iterable[str] = ()):
  """`models.build_model` with the named prototypes' parts swapped in."""
  names = check(names)
  objectives = models.build_objectives(config)
  for name in names:
    if name in _CONTRASTIVE:
      for objective in objectives:
        if isinstance(objective, tasks.AlignmentTask):
          objective.contrastive = _CONTRASTIVE[name].from_config(
              objective.contrastive.get_config())
  funnel = next((_FUNNEL[n] for n in names if n in _FUNNEL), None)
  return models.build_model(
      config, schema, objectives=objectives,
      task=funnel(name="funnel") if funnel else None)
