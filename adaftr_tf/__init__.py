"""adaftr-tf: joint CTR/CVR estimation with adaptive task relatedness (AdaFTR).

Keras 2 through tf-keras is required (tensorflow-recommenders needs it): set
`TF_USE_LEGACY_KERAS=1` before TensorFlow is first imported.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as _tf  # noqa: E402

if not _tf.keras.__name__.startswith("tf_keras"):
  raise ImportError(
      "adaftr_tf needs Keras 2 (tf-keras), but tf.keras is "
      f"{_tf.keras.__name__}: TensorFlow was imported before "
      "TF_USE_LEGACY_KERAS=1 was set. Set the environment variable "
      "TF_USE_LEGACY_KERAS=1 before importing tensorflow (or import adaftr_tf "
      "first), and install tf-keras.")

__version__ = "0.1.0"
