"""Keras callbacks of the training job: tau histogram, best epoch, epoch weights.

Each callback takes the directory it writes to. Under a multi-worker strategy
the job gives the chief the model directory and the other workers a scratch
directory: saving is collective there (every worker must save), but only the
chief's files are kept.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tf_keras

from adaftr_tf import features as F


class TauHistogram(tf_keras.callbacks.Callback):
  """Writes a TensorBoard histogram of tau on a fixed validation batch."""

  def __init__(self, log_dir: str, features):
    super().__init__()
    self._writer = tf.summary.create_file_writer(os.path.join(log_dir, "tau"))
    self._features = features

  def on_epoch_end(self, epoch, logs=None):
    tau = self.model(self._features, training=False).get(F.TAU)
    if tau is not None:
      with self._writer.as_default():
        tf.summary.histogram("tau", tau, step=epoch)
        tf.summary.scalar("tau_mean", tf.reduce_mean(tau), step=epoch)
      self._writer.flush()


def to_float(value) -> float:
  """A log value (tensor, numpy, parameter-server RemoteValue) -> float."""
  if hasattr(value, "fetch"):
    value = value.fetch()
  return float(np.asarray(value))


class BestEpoch(tf_keras.callbacks.Callback):
  """Keeps the weights of the best epoch on a validation metric.

  Its state (`state` / `set_state`) travels in the step checkpoints, so a
  resumed run keeps the best epoch and the patience count of the killed one.
  """

  def __init__(self, monitor: str, path: str, patience: int = 0):
    super().__init__()
    self.monitor, self.path, self.patience = monitor, path, patience
    self.mode_max = not monitor.endswith("loss")
    self.best, self.best_epoch, self._wait = None, None, 0

  def state(self) -> dict:
    return {"best": self.best, "best_epoch": self.best_epoch,
            "wait": self._wait}

  def set_state(self, state: dict | None) -> None:
    state = state or {}
    self.best = state.get("best")
    self.best_epoch = state.get("best_epoch")
    self._wait = state.get("wait", 0)

  @property
  def exhausted(self) -> bool:
    """Early stopping has triggered."""
    return bool(self.patience) and self._wait >= self.patience

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      raise ValueError(f"checkpoint metric {self.monitor!r} missing from the "
                       f"epoch logs; have {sorted(logs or {})}")
    value = to_float(value)
    better = self.best is None or (value > self.best if self.mode_max
                                   else value < self.best)
    if better and np.isfinite(value):
      self.best, self.best_epoch, self._wait = value, epoch + 1, 0
      self.model.save_weights(self.path)
    else:
      self._wait += 1
    if self.exhausted:
      self.model.stop_training = True


class EpochWeights(tf_keras.callbacks.Callback):
  """Saves the weights after every epoch as `<directory>/epoch-NNN`."""

  def __init__(self, directory: str):
    super().__init__()
    self.directory = directory

  def on_epoch_end(self, epoch, logs=None):
    self.model.save_weights(
        os.path.join(self.directory, f"epoch-{epoch + 1:03d}"))
