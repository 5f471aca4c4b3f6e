"""Tests of adaftr_tf.tasks.ranking: the ranking tasks' metrics."""

from adaftr_tf import tasks
from adaftr_tf.keras_metrics import BucketedAUC


def test_ranking_task_uses_bucketed_auc():
  task = tasks.ranking_task("ctr")
  names = {m.name: type(m) for m in task._ranking_metrics}
  assert names["ctr_auc"] is BucketedAUC
