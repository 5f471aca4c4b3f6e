"""Entire-space (ESMM-style) CTR / CTCVR losses, computed from logits.

With `a` the CTR logit and `b` the CVR logit, `p_ctcvr = sigmoid(a) *
sigmoid(b)`. Forming that product in probability space underflows to 0 or
rounds to 1 for large |logits| and the BCE becomes inf; everything here stays
in log space and is finite for every finite logit.

All functions are pure, return per-example losses [batch] (reduce them in the
caller) and compute in float32 at least (half-precision inputs are upcast).
"""

import tensorflow as tf


def _float(x):
  x = tf.convert_to_tensor(x)
  if x.dtype in (tf.float32, tf.float64):
    return x
  return tf.cast(x, tf.float32)


def _logaddexp(x, y):
  # reduce_logsumexp subtracts a stop-gradient max: exact gradient at x == y,
  # which max(x, y) + softplus(-|x - y|) would get wrong.
  return tf.reduce_logsumexp(tf.stack([x, y], axis=-1), axis=-1)


def bce_with_logits(labels, logits):
  """Per-example binary cross-entropy from logits.

  `loss = -(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z)))`, evaluated as
  `tf.nn.sigmoid_cross_entropy_with_logits`.

  Args:
    labels: [batch] in {0, 1} (any numeric dtype; cast to the logits' dtype).
    logits: [batch] float.

  Returns:
    [batch] loss.
  """
  logits = _float(logits)
  labels = tf.cast(labels, logits.dtype)
  return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)


def ctcvr_log_probs(ctr_logit, cvr_logit):
  """`log p` and `log(1 - p)` of `p = sigmoid(a) * sigmoid(b)`.

  `log p = -softplus(-a) - softplus(-b)`;
  `log(1 - p) = logaddexp(-softplus(a), -softplus(-a) - softplus(b))`,
  because `1 - sigmoid(a) sigmoid(b) = sigmoid(-a) + sigmoid(a) sigmoid(-b)`
  (not clicked, or clicked and not converted).

  Args:
    ctr_logit: [batch] float, `a`.
    cvr_logit: [batch] float, `b`.

  Returns:
    (log_p [batch], log_1mp [batch]), both finite for finite logits.
  """
  a = _float(ctr_logit)
  b = tf.cast(cvr_logit, a.dtype)
  log_sig_a = -tf.nn.softplus(-a)
  log_p = log_sig_a - tf.nn.softplus(-b)
  log_1mp = _logaddexp(-tf.nn.softplus(a), log_sig_a - tf.nn.softplus(b))
  return log_p, log_1mp


def ctcvr_logit(ctr_logit, cvr_logit):
  """Log-odds of `p_ctcvr = sigmoid(a) * sigmoid(b)`: `log p - log(1 - p)`.

  `sigmoid(ctcvr_logit(a, b)) == sigmoid(a) * sigmoid(b)`, and BCE-with-logits
  on it equals `ctcvr_bce`, so metrics and Keras losses can use it directly.

  Args:
    ctr_logit: [batch] float. cvr_logit: [batch] float.

  Returns:
    [batch], finite for finite inputs.
  """
  log_p, log_1mp = ctcvr_log_probs(ctr_logit, cvr_logit)
  return log_p - log_1mp


def ctcvr_bce(conversion, ctr_logit, cvr_logit):
  """Per-example CTCVR BCE: `-(y log p + (1 - y) log(1 - p))`.

  Args:
    conversion: [batch] click-and-convert label in {0, 1}.
    ctr_logit: [batch] float. cvr_logit: [batch] float.

  Returns:
    [batch] loss, finite (with finite gradients) for finite logits.
  """
  log_p, log_1mp = ctcvr_log_probs(ctr_logit, cvr_logit)
  y = tf.cast(conversion, log_p.dtype)
  return -(y * log_p + (1.0 - y) * log_1mp)


def esmm_loss(click, conversion, ctr_logit, cvr_logit):
  """Entire-space task loss `BCE(click, p_ctr) + BCE(conversion, p_ctcvr)`.

  Args:
    click: [batch] click label. conversion: [batch] click-and-convert label.
    ctr_logit: [batch] float. cvr_logit: [batch] float.

  Returns:
    [batch] per-example loss over all impressions.
  """
  return (bce_with_logits(click, ctr_logit) +
          ctcvr_bce(conversion, ctr_logit, cvr_logit))


def behavioural_calibration(ctr_logit, ctcvr_logit):
  """AITM's behavioural expectation calibrator, per example.

  A conversion implies a click, so p_ctcvr <= p_ctr must hold:
    L_i = max(sigmoid(z_i) - sigmoid(a_i), 0)
  with `a` the CTR logit and `z` the directly predicted CTCVR logit.

  Args:
    ctr_logit, ctcvr_logit: [batch].

  Returns:
    [batch] float32 penalties (0 where the predictions are consistent).
  """
  a, z = _float(ctr_logit), _float(ctcvr_logit)
  return tf.nn.relu(tf.sigmoid(z) - tf.sigmoid(a))


def conditional_cvr_logit(ctr_logit, ctcvr_logit):
  """Log-odds of p_cvr = p_ctcvr / p_ctr for a directly predicted CTCVR.

  log p_cvr = log sigmoid(z) - log sigmoid(a), capped just below 0 so that
  p_cvr stays in (0, 1) when the prediction violates p_ctcvr <= p_ctr.

  Args:
    ctr_logit, ctcvr_logit: [batch].

  Returns:
    [batch] float32 CVR logits.
  """
  a, z = _float(ctr_logit), _float(ctcvr_logit)
  log_p = tf.minimum(-tf.nn.softplus(-z) + tf.nn.softplus(-a), -1e-6)
  return log_p - tf.math.log(-tf.math.expm1(log_p))
