"""Gradient agreement between the CTR and CTCVR losses, per instance.

For instance i with a shared representation x_i (its input embeddings),
  a_i = cos( dL_ctr_i / dx_i , dL_ctcvr_i / dx_i )  in [-1, 1].
Because each example's loss depends only on its own row of x (no batch
statistics), the gradient of the *summed* loss with respect to x `[B, E]` has
the per-example gradients as its rows, so one backward pass per task gives
every instance's gradient: no per-example loop.

Two sources (`loss.agreement_source`):
  losses  a_i = cos(dL_ctr_i/dx_i, dL_ctcvr_i/dx_i), the definition above;
  logits  a_i = cos(d ctr_logit_i/dx_i, d cvr_logit_i/dx_i), label-free.
Since dL/dx = (p - y) * dlogit/dx for a per-example BCE, the loss cosine is
  sign((p_ctr - click) * (p_ctcvr - conversion)) * cos(d ctr_logit, d ctcvr_logit):
the logit-space cosine with its sign set by the label pattern (negative for
every clicked, unconverted impression). Measured on strongly planted
synthetic data (tiny preset, 40k rows, click 0.3, purchase 0.5, 4 epochs;
valid split), the loss source tracks the planted relatedness r (Spearman
+0.24 measured, +0.32 predicted) and the logit source does not (-0.13,
-0.23), hence `losses` is the default.
"""

import tensorflow as tf


def per_example_cosine(g1, g2, eps: float = 1e-12):
  """Row-wise cosine of `[B, E]` gradients -> `[B]` float32 (0 for zero rows)."""
  g1 = tf.cast(g1, tf.float32)
  g2 = tf.cast(g2, tf.float32)
  dot = tf.reduce_sum(g1 * g2, axis=-1)
  norms = tf.norm(g1, axis=-1) * tf.norm(g2, axis=-1)
  return dot / tf.maximum(norms, eps)


def agreement_target(cosine):
  """Rescales a cosine in [-1, 1] to a regression target in [0, 1]."""
  return 0.5 * (tf.cast(cosine, tf.float32) + 1.0)


def relatedness_regression_loss(cosine, relatedness_logit):
  """Per-example logistic loss of the predicted agreement, `[B]`.

  The relatedness network predicts rho_hat = sigmoid(-f) (so that
  tau = tau_min + (tau_max - tau_min) * sigmoid(f) falls as rho_hat rises):
    L_i = BCE( (a_i + 1) / 2 , sigmoid(-f_i) ),  a_i stop-gradient.
  """
  target = tf.stop_gradient(agreement_target(cosine))
  return tf.nn.sigmoid_cross_entropy_with_logits(
      labels=target, logits=-tf.cast(relatedness_logit, tf.float32))
