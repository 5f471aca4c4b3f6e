"""The prediction objectives: per-task BCE with AUC and log-loss metrics.

* `ranking_task(prefix)`: a `tfrs.tasks.Ranking` over logits with a
  per-example BCE (reduction NONE: the model averages over the *global* batch
  under tf.distribute) and metrics `{prefix}_auc`, `{prefix}_logloss`.
* `FunnelTask`: the CTR -> CVR funnel (ESMM's entire-space objective).
* `IndependentTask`: two independent binary tasks, one BCE each over every
  row, with metrics named after the labels and their `mean_auc`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from adaftr_tf import features as F
from adaftr_tf.keras_metrics import BucketedAUC
from adaftr_tf.keras_metrics import MeanOfMetrics
from adaftr_tf.keras_metrics import PredictedOverObserved
from adaftr_tf.losses import bce_with_logits

# AUC thresholds spread uniformly in logit space: CTCVR probabilities sit far
# below 0.01, where Keras's default linear thresholds have no resolution.
AUC_THRESHOLDS = tuple(1.0 / (1.0 + np.exp(-np.linspace(-16.0, 10.0, 999))))


def ranking_metrics(prefix: str) -> list[tf_keras.metrics.Metric]:
  """`{prefix}_auc` (bucketed, over logits), `{prefix}_logloss` and
  `{prefix}_pred_obs` (mean prediction over the observed rate: the
  calibration of the task over the epoch, in the logs and history.json)."""
  return [BucketedAUC(thresholds=list(AUC_THRESHOLDS), from_logits=True,
                      name=f"{prefix}_auc"),
          tf_keras.metrics.BinaryCrossentropy(from_logits=True,
                                              name=f"{prefix}_logloss"),
          PredictedOverObserved(name=f"{prefix}_pred_obs")]


def ranking_task(prefix: str,
                 metrics: list | None = None) -> tfrs.tasks.Ranking:
  """Per-example BCE from logits `[batch, 1]` with `ranking_metrics`."""
  return tfrs.tasks.Ranking(
      loss=tf_keras.losses.BinaryCrossentropy(
          from_logits=True, reduction=tf_keras.losses.Reduction.NONE),
      metrics=ranking_metrics(prefix) if metrics is None else metrics,
      name=f"{prefix}_task")


class FunnelTask(tf_keras.layers.Layer):
  """The click -> conversion funnel objective (ESMM, entire space).

  `L_i = BCE(click_i, p_ctr_i) + BCE(conversion_i, p_ctcvr_i)` over every
  impression, from the logits (`p_ctcvr` in log space, layers/heads.py);
  the CVR metrics read clicked impressions only (`click` as the weight).

  Call:
    labels: {click, conversion} `[batch]` float.
    outputs: the model's outputs (`ctr_logit`, `cvr_logit`, `ctcvr_logit`
      `[batch]`).

  Returns:
    (ctr_loss `[batch]`, ctcvr_loss `[batch]`): the two tasks' per-example
    losses (their sum is the objective), with the metrics updated.
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.ctr_task = self.make_task("ctr")
    self.ctcvr_task = self.make_task("ctcvr")
    self.cvr_metrics = self.make_metrics("cvr")

  def make_task(self, prefix: str) -> tfrs.tasks.Ranking:
    """One task's loss and metrics (a subclass may measure other metrics)."""
    return ranking_task(prefix, self.make_metrics(prefix))

  def make_metrics(self, prefix: str) -> list[tf_keras.metrics.Metric]:
    return ranking_metrics(prefix)

  def call(self, labels: Mapping[str, tf.Tensor],
           outputs: Mapping[str, tf.Tensor]):
    click = labels[F.CLICK][:, None]
    conversion = labels[F.CONVERSION][:, None]
    ctr_loss = self.ctr_task(click, outputs[F.CTR_LOGIT][:, None])
    ctcvr_loss = self.ctcvr_task(conversion, outputs[F.CTCVR_LOGIT][:, None])
    for metric in self.cvr_metrics:
      metric.update_state(conversion, outputs[F.CVR_LOGIT][:, None],
                          sample_weight=click)
    return ctr_loss, ctcvr_loss

  def plain_losses(self, labels, outputs):
    """The two per-example losses `[batch]` without touching any metric."""
    return (bce_with_logits(labels[F.CLICK], outputs[F.CTR_LOGIT]),
            bce_with_logits(labels[F.CONVERSION], outputs[F.CTCVR_LOGIT]))


class IndependentTask(tf_keras.layers.Layer):
  """Two independent binary tasks: `L_i = BCE(y1_i, σ(a_i)) + BCE(y2_i, σ(b_i))`
  over every row, no product; metrics `{name}_auc`, `{name}_logloss` per
  task and `mean_auc` (the two AUCs' mean, a checkpoint metric).

  Args:
    names: the two tasks' metric prefixes (the schema's label names).

  Call:
    labels: {click: first label, conversion: second label} `[batch]` float.
    outputs: the model's outputs (`ctr_logit`, `cvr_logit` `[batch]`: the
      first and second task's logits).

  Returns:
    (first loss `[batch]`, second loss `[batch]`), with the metrics updated.
  """

  def __init__(self, names: tuple[str, str], **kwargs):
    super().__init__(**kwargs)
    self.names = tuple(names)
    first, second = (ranking_metrics(name) for name in self.names)
    self.first_task = ranking_task(self.names[0], first)
    self.second_task = ranking_task(self.names[1], second)
    self.mean_auc = MeanOfMetrics((first[0], second[0]), name="mean_auc")

  def call(self, labels: Mapping[str, tf.Tensor],
           outputs: Mapping[str, tf.Tensor]):
    return (self.first_task(labels[F.CLICK][:, None],
                            outputs[F.CTR_LOGIT][:, None]),
            self.second_task(labels[F.CONVERSION][:, None],
                             outputs[F.CVR_LOGIT][:, None]))

  def plain_losses(self, labels, outputs):
    """The two per-example losses `[batch]` without touching any metric."""
    return (bce_with_logits(labels[F.CLICK], outputs[F.CTR_LOGIT]),
            bce_with_logits(labels[F.CONVERSION], outputs[F.CVR_LOGIT]))
