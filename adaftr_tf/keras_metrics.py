"""Streaming Keras metrics of the training loop (progress bars, validation).

Final reports use the exact NumPy metrics of `adaftr_tf.metrics`.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from adaftr_tf import xla


class BucketedAUC(tf_keras.metrics.AUC):
  """tf_keras AUC (single label) with an O(batch log T) update.

  Keras's update for unevenly spaced thresholds tiles the `[batch]`
  predictions against all T thresholds (`[batch, T]` comparisons; T = 1001
  here). Here each prediction p gets k = #(thresholds < p) by a binary
  search (`xla.searchsorted`, also under XLA);
  per-bucket label weights `[T + 1]` then give, for every threshold t,
  TP[t] = positive weight with k > t (a reverse cumulative sum), and FN, FP,
  TN likewise. Same variables as tf_keras AUC, hence the same `result()`.
  Multi-label or label-weighted use falls back to the Keras update.
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
    buckets = xla.searchsorted(thresholds, y_pred, side="left")
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


class MeanOfMetrics(tf_keras.metrics.Metric):
  """The mean of other metrics' results (e.g. two tasks' AUCs), a scalar.

  Owns no state: `update_state` and `reset_state` do nothing (the owners of
  `parts` update and reset them), so it adds no variable and is not tracked
  as their parent (the parts are held by a closure).
  """

  def __init__(self, parts, **kwargs):
    super().__init__(**kwargs)
    parts = tuple(parts)
    if not parts:
      raise ValueError("MeanOfMetrics needs at least one metric")
    self._part_results = lambda: [p.result() for p in parts]

  def update_state(self, *args, **kwargs):
    del args, kwargs

  def result(self):
    results = self._part_results()
    return tf.add_n(results) / len(results)

  def reset_state(self):
    pass


class PredictedOverObserved(tf_keras.metrics.Metric):
  """Mean predicted probability over the observed positive rate, streamed:
  `sum(w sigmoid(z)) / sum(w y)` over every update since the last reset (1:
  calibrated in the mean; > 1: over-predicting). NaN before any positive.

  Call (update_state): y_true `[b]` or `[b, 1]` labels, y_pred logits of the
  same shape, sample_weight `[b]` / `[b, 1]` or None.
  """

  def __init__(self, name: str = "pred_obs", **kwargs):
    super().__init__(name=name, **kwargs)
    self.predicted = self.add_weight("predicted", initializer="zeros")
    self.observed = self.add_weight("observed", initializer="zeros")

  def update_state(self, y_true, y_pred, sample_weight=None):
    y_pred = tf.sigmoid(tf.reshape(tf.cast(y_pred, self.dtype), [-1]))
    y_true = tf.reshape(tf.cast(y_true, self.dtype), [-1])
    weight = (tf.ones_like(y_pred) if sample_weight is None else
              tf.reshape(tf.cast(sample_weight, self.dtype), [-1]))
    return tf.group(self.predicted.assign_add(tf.reduce_sum(weight * y_pred)),
                    self.observed.assign_add(tf.reduce_sum(weight * y_true)))

  def result(self):
    return tf.math.divide_no_nan(self.predicted, self.observed) + tf.where(
        self.observed > 0, 0.0, float("nan"))

  def reset_state(self):
    self.predicted.assign(0.0)
    self.observed.assign(0.0)
