"""The predictive transfer gate: a relatedness signal learned from the
conversion labels (relatedness_signal=transfer_gate).

On the clicked impressions, a probe explains conversions by the
(stop-gradient) CTR logit with an instance-specific slope:
  p~_i = sigmoid(alpha + g_i * sg(a_i - a_bar)),   g_i = softplus(f(x_i)),
  L_i = click_i * BCE(conversion_i, p~_i),
with f the relatedness network (reading the detached field embeddings),
alpha one learned intercept and a_bar the batch's mean CTR logit over clicked
rows. In the synthetic world the purchase logit's slope on the click logit is
gamma(r) = r / sqrt(r^2 + (1 - r)^2), monotone in the planted relatedness r,
so g is a maximum-likelihood estimate of a function of r from the only data
that carry it (../shared/research-relatedness-signals.md, candidate A).

tau follows g's rank in the batch: rho_i = clip((g_i - q_low) / max(q_high -
q_low, MIN_SPREAD), 0, 1), tau_i = tau_max - (tau_max - tau_min) rho_i (small
tau, strong alignment, where the slope is high), stop-gradient into InfoNCE;
q_low, q_high are the batch's `quantile` and `1 - quantile` quantiles of g
(default 5% and 95%; a larger `quantile` clips more slopes to the bounds, a
steeper map).
While the slopes have not spread beyond MIN_SPREAD (early training) rho
stays near 0: weak alignment until the gate has learned something.
"""

from __future__ import annotations

import tensorflow as tf

# Slopes closer than this (on the CTR-logit scale) count as one slope.
MIN_SPREAD = 0.05
DEFAULT_QUANTILE = 0.05
INITIAL_INTERCEPT = -2.0   # ~ the logit of a 12% post-click conversion rate


def slope(relatedness_logit: tf.Tensor) -> tf.Tensor:
  """g `[batch]` >= 0 from the relatedness network's output f `[batch]`."""
  return tf.nn.softplus(tf.cast(relatedness_logit, tf.float32))


def probe_loss(g: tf.Tensor, ctr_logit: tf.Tensor, click: tf.Tensor,
               conversion: tf.Tensor, intercept: tf.Tensor) -> tf.Tensor:
  """Per-example probe loss `[batch]` (0 on unclicked rows). For two
  independent tasks `click` is all ones (every row) and `conversion` the
  second task's label."""
  click = tf.cast(click, tf.float32)
  a = tf.stop_gradient(tf.cast(ctr_logit, tf.float32))
  a_bar = tf.stop_gradient(tf.math.divide_no_nan(
      tf.reduce_sum(a * click), tf.reduce_sum(click)))
  logits = tf.cast(intercept, tf.float32) + g * (a - a_bar)
  return click * tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(conversion, tf.float32), logits=logits)


def _quantile(values: tf.Tensor, q: float) -> tf.Tensor:
  ordered = tf.sort(values)
  index = tf.cast(tf.math.floor(q * tf.cast(tf.size(values) - 1, tf.float32)),
                  tf.int32)
  return ordered[index]


def gate_tau(g: tf.Tensor, tau_min: float, tau_max: float,
             quantile: float = DEFAULT_QUANTILE) -> tf.Tensor:
  """tau `[batch]` from the slopes `[batch]`, mapped linearly between their
  `quantile` and `1 - quantile` batch quantiles (see the module docstring)."""
  g = tf.stop_gradient(g)
  low = _quantile(g, quantile)
  spread = tf.maximum(_quantile(g, 1.0 - quantile) - low, MIN_SPREAD)
  rho = (g - low) / spread
  # One clip on tau bounds rho to [0, 1] and also catches float32 putting
  # tau_max - (tau_max - tau_min) one ulp below tau_min.
  return tf.clip_by_value(tau_max - (tau_max - tau_min) * rho, tau_min,
                          tau_max)
