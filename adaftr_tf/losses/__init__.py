"""Pure loss functions of adaftr-tf (per-example, float32)."""

from adaftr_tf.losses.agreement import per_example_cosine
from adaftr_tf.losses.agreement import relatedness_regression_loss
from adaftr_tf.losses.info_nce import info_nce
from adaftr_tf.losses.info_nce import random_negative_indices
from adaftr_tf.losses.info_nce import random_negative_info_nce
from adaftr_tf.losses.info_nce import symmetric_in_batch_info_nce
from adaftr_tf.losses.info_nce import symmetric_info_nce
from adaftr_tf.losses.multitask import bce_with_logits
from adaftr_tf.losses.multitask import behavioural_calibration
from adaftr_tf.losses.multitask import conditional_cvr_logit
from adaftr_tf.losses.multitask import ctcvr_bce
from adaftr_tf.losses.multitask import ctcvr_log_probs
from adaftr_tf.losses.multitask import ctcvr_logit
from adaftr_tf.losses.multitask import esmm_loss

__all__ = [
    "per_example_cosine",
    "relatedness_regression_loss",
    "behavioural_calibration",
    "conditional_cvr_logit",
    "info_nce",
    "symmetric_info_nce",
    "symmetric_in_batch_info_nce",
    "random_negative_info_nce",
    "random_negative_indices",
    "bce_with_logits",
    "ctcvr_log_probs",
    "ctcvr_logit",
    "ctcvr_bce",
    "esmm_loss",
]
