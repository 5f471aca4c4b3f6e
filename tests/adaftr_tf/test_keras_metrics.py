"""BucketedAUC (the training loop's streaming AUC) against tf_keras AUC."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import tasks
from adaftr_tf.keras_metrics import BucketedAUC


@pytest.mark.parametrize("weighted", [False, True])
def test_bucketed_auc_has_the_keras_auc_state(weighted):
  rng = np.random.default_rng(0)
  logits = rng.normal(-3, 3, size=(500, 1)).astype(np.float32)
  logits[:20] = np.float32(tasks.AUC_THRESHOLDS[10])   # ties on a threshold
  labels = (rng.random((500, 1)) < 0.1).astype(np.float32)
  weights = (rng.random((500, 1)) < 0.5).astype(np.float32) if weighted else None
  thresholds = list(tasks.AUC_THRESHOLDS)
  keras = tf_keras.metrics.AUC(thresholds=thresholds, from_logits=True)
  bucketed = BucketedAUC(thresholds=thresholds, from_logits=True)
  for _ in range(2):   # accumulates across updates
    keras.update_state(labels, logits, sample_weight=weights)
    bucketed.update_state(labels, logits, sample_weight=weights)
  for a, b in zip(keras.variables, bucketed.variables):
    np.testing.assert_allclose(a.numpy(), b.numpy())
  assert bucketed.result().numpy() == pytest.approx(keras.result().numpy())
  assert 0.3 < bucketed.result().numpy() < 0.7   # random scores


def test_bucketed_auc_on_probabilities_and_reset():
  labels = np.array([0, 0, 1, 1], np.float32)
  probs = np.array([0.1, 0.4, 0.35, 0.8], np.float32)
  metric = BucketedAUC(num_thresholds=201)
  metric.update_state(labels, probs)
  assert metric.result().numpy() == pytest.approx(0.75, abs=0.01)
  metric.reset_state()
  metric.update_state(labels, np.array([0.1, 0.2, 0.8, 0.9], np.float32))
  assert metric.result().numpy() == pytest.approx(1.0)


def test_predicted_over_observed_streams_the_weighted_ratio():
  from adaftr_tf.keras_metrics import PredictedOverObserved
  metric = PredictedOverObserved()
  assert np.isnan(float(metric.result()))          # no positive yet
  logits = np.array([0.0, 2.0, -2.0, 1.0], np.float32)
  labels = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
  weights = np.array([1.0, 1.0, 0.0, 1.0], np.float32)
  metric.update_state(labels, logits, sample_weight=weights)
  metric.update_state(labels[:1], logits[:1])
  p = 1 / (1 + np.exp(-logits))
  expected = ((p * weights).sum() + p[0]) / ((labels * weights).sum() + 1)
  assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
  metric.reset_state()
  assert np.isnan(float(metric.result()))


def test_bucketed_auc_updates_alike_under_xla():
  """Under XLA the buckets come from xla.searchsorted's binary search (XLA's
  own compares every prediction with all 1,001 thresholds)."""
  rng = np.random.default_rng(1)
  logits = rng.normal(-3, 3, size=(300,)).astype(np.float32)
  logits[:10] = np.float32(tasks.AUC_THRESHOLDS[10])
  labels = (rng.random(300) < 0.2).astype(np.float32)
  thresholds = list(tasks.AUC_THRESHOLDS)
  eager = BucketedAUC(thresholds=thresholds, from_logits=True)
  compiled = BucketedAUC(thresholds=thresholds, from_logits=True)
  eager.update_state(labels, logits)
  @tf.function(jit_compile=True)
  def update(y, z):
    compiled.update_state(y, z)

  update(labels, logits)
  for a, b in zip(eager.variables, compiled.variables):
    np.testing.assert_allclose(a.numpy(), b.numpy())
