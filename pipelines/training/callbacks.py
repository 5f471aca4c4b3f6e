"""Keras callbacks of the training job: tau histogram, best epoch, epoch
weights, the non-finite guard, and the weights' moving average.

Every checkpoint write goes through `write_checkpoint`: a failed write (full or
read-only disk) raises `CheckpointWriteError` naming the path; TensorFlow writes
under temporary names and renames, so what was written before stays intact.
`NonFiniteGuard` (first in the callback list) stops training with
`NonFiniteError` at the first NaN/Inf loss, before any later callback can save
non-finite weights.

Each callback takes the directory it writes to. Under a multi-worker strategy
the job gives the chief the model directory and the other workers a scratch
directory: saving is collective there (every worker must save), but only the
chief's files are kept.
"""

from __future__ import annotations

import errno
import math
import os
from typing import Callable, TypeVar

import numpy as np
import tensorflow as tf
import tf_keras

from adaftr_tf import features as F
from adaftr_tf import optimizers


class TauHistogram(tf_keras.callbacks.Callback):
  """Relatedness diagnostics in TensorBoard (`tensorboard/tau`), per epoch.

  On one fixed validation batch `(features, labels[, oracle])`: histograms
  and means of tau, of the predicted relatedness
  rho_hat = (tau_max - tau) / (tau_max - tau_min) in [0, 1] and of the
  measured per-instance gradient agreement (`model.gradient_agreement`, for
  every relatedness signal); with the synthetic oracle column `r`, the
  Spearman correlation of rho_hat (equivalently -tau) and of the agreement
  with r; the fractions of the batch at each tau bound (`tau_at_min`,
  `tau_at_max`), also added to the epoch's logs (so to history.json). A
  model without the alignment block writes nothing.
  """

  def __init__(self, log_dir: str, sample):
    super().__init__()
    self._writer = tf.summary.create_file_writer(os.path.join(log_dir, "tau"))
    if isinstance(sample, dict):   # features only
      sample = (sample,)
    self._features = sample[0]
    self._labels = sample[1] if len(sample) > 1 else None
    extra = sample[2] if len(sample) > 2 else {}
    self._relatedness = extra.get(F.ORACLE_RELATEDNESS)

  def _summaries(self) -> dict[str, np.ndarray]:
    tau = self.model(self._features, training=False).get(F.TAU)
    if tau is None:
      return {}
    tau = np.asarray(tau, np.float64).reshape(-1)
    values = {"tau": tau}
    alignment = getattr(self.model, "alignment_task", None)
    if alignment is not None:
      tau_min, tau_max = alignment.tau_bounds
      values["predicted_relatedness"] = (tau_max - tau) / (tau_max - tau_min)
    if self._labels is not None:
      values["agreement"] = np.asarray(self.model.gradient_agreement(
          self._features, self._labels), np.float64).reshape(-1)
    return values

  def on_epoch_end(self, epoch, logs=None):
    from adaftr_tf import metrics as M
    values = self._summaries()
    if not values:
      return
    alignment = self.model.alignment_task
    fractions = M.at_bounds(values["tau"], *alignment.tau_bounds, "tau")
    if logs is not None:
      logs.update(fractions)
    with self._writer.as_default():
      for name, value in fractions.items():
        tf.summary.scalar(name, value, step=epoch)
      for name, value in values.items():
        tf.summary.histogram(name, value, step=epoch)
        tf.summary.scalar(f"{name}_mean", float(value.mean()), step=epoch)
      if self._relatedness is not None:
        r = np.asarray(self._relatedness, np.float64).reshape(-1)
        tf.summary.scalar("spearman_neg_tau_vs_r",
                          M.spearman(-values["tau"], r), step=epoch)
        if "agreement" in values:
          tf.summary.scalar("spearman_agreement_vs_r",
                            M.spearman(values["agreement"], r), step=epoch)
    self._writer.flush()


def to_float(value) -> float:
  """A log value (tensor, numpy, parameter-server RemoteValue) -> float."""
  if hasattr(value, "fetch"):
    value = value.fetch()
  return float(np.asarray(value))


T = TypeVar("T")


class NonFiniteError(RuntimeError):
  """Training produced a NaN/Inf loss or weights; none of it was saved."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written; earlier checkpoints are intact."""


def _first_line(err: BaseException) -> str:
  return (str(err).splitlines() or [""])[0][:300]


def os_errno(err: BaseException) -> int:
  """The errno of an OSError or of TensorFlow's file-system errors."""
  return getattr(err, "errno", None) or {
      tf.errors.PermissionDeniedError: errno.EACCES,
      tf.errors.ResourceExhaustedError: errno.ENOSPC,
      tf.errors.NotFoundError: errno.ENOENT}.get(type(err), errno.EIO)


def write_checkpoint(path: str, write: Callable[[], T], what: str) -> T:
  """Runs `write()`; a failure becomes CheckpointWriteError naming `path`."""
  try:
    return write()
  except (OSError, tf.errors.OpError) as err:
    code = os_errno(err)
    raise CheckpointWriteError(
        code, f"cannot write the {what} {path}: {type(err).__name__}: "
        f"{_first_line(err)} (is the disk full or read-only?); checkpoints "
        "written before are intact") from err


def first_non_finite(variables) -> str | None:
  """Name of the first variable holding a NaN or Inf, or None."""
  for variable in variables:
    if not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(
        variable)))):
      return variable.name
  return None


def check_finite_weights(model, what: str) -> None:
  """Raises NonFiniteError before `what` (a save) stores NaN/Inf weights."""
  bad = first_non_finite(model.trainable_variables)
  if bad is not None:
    raise NonFiniteError(
        f"training stopped: variable {bad} holds NaN or Inf values, so the "
        f"{what} was not written; the checkpoints written before hold finite "
        "weights. Lower train.learning_rate or check the inputs, and train "
        "into a fresh --model_dir")


class NonFiniteGuard(tf_keras.callbacks.Callback):
  """Stops training at the first NaN/Inf loss; put it first in the list.

  The loss in the logs is the epoch's running mean, so one non-finite step
  makes it non-finite until the epoch ends: checked at every batch end (each
  `steps_per_execution` group) and at the epoch end, before the callbacks
  after it save anything; at the epoch end the weights are checked too.

  Args:
    steps_per_epoch: for the global step in messages.
    checkpoint_dir: the step checkpoints' directory (named in the message).
    check_batches: check at batch ends (off under parameter_server, where
      logs are remote values and batch hooks are not run).
  """

  def __init__(self, steps_per_epoch: int, checkpoint_dir: str,
               check_batches: bool = True):
    super().__init__()
    self._supports_tf_logs = True
    self.steps, self.checkpoint_dir = steps_per_epoch, checkpoint_dir
    self.check_batches = check_batches
    self._epoch = 0

  def _check(self, logs, keys, where: Callable[[], str]) -> None:
    for key in keys:
      if key in (logs or {}):
        value = to_float(logs[key])
        if not math.isfinite(value):
          where = where()
          state = tf.train.get_checkpoint_state(self.checkpoint_dir)
          latest = state.model_checkpoint_path if state else None
          raise NonFiniteError(
              f"training stopped: the {key} is {value} {where} (epoch "
              f"{self._epoch + 1}); nothing was saved after it, and the last "
              f"good step checkpoint is {latest or 'none yet'} (the epoch "
              "and best weights written before hold finite values). Lower "
              "train.learning_rate or check the inputs, and train into a "
              "fresh --model_dir")

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if self.check_batches:
      self._check(logs, ("loss",), lambda: "after global step "
                  f"{int(self.model.optimizer.iterations.numpy())}")

  def on_epoch_end(self, epoch, logs=None):
    self._check(logs, ("loss", "val_loss"),
                lambda: "at the end of the epoch")
    check_finite_weights(self.model, "epoch-end checkpoints")


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
      write_checkpoint(self.path, lambda: self.model.save_weights(self.path),
                       "best-epoch weights")
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
    path = os.path.join(self.directory, f"epoch-{epoch + 1:03d}")
    write_checkpoint(path, lambda: self.model.save_weights(path),
                     "epoch weights")


class AveragedWeights(tf_keras.callbacks.Callback):
  """Validates and saves the weights' moving average (`train.ema_momentum`).

  When `fit`'s validation starts it swaps each trainable variable with its
  average kept by the optimizer (`optimizers.averaged_pairs`; nothing when
  the optimizer keeps none); `restore`, a second callback placed after those
  that save or read the weights at the epoch's end (epoch and best weights,
  summaries), swaps them back before the step checkpoint. So validation,
  `best/` and `epochs/` hold the averages, training continues from the
  trained weights, and a step checkpoint holds both (exact resume).
  """

  def __init__(self):
    super().__init__()
    self.swapped = False
    self.restore = _SwapBack(self)

  def swap(self) -> None:
    """Trained weights <-> averages (`slot / (1 - m^t)`; the slot holds the
    trained weights while the averages are in; back, it holds the average
    again up to float rounding, the same in an interrupted and a resumed
    run)."""
    pairs = optimizers.averaged_pairs(self.model.optimizer,
                                      self.model.trainable_variables)
    debias = optimizers.average_debias(self.model.optimizer) if pairs else 0.0
    if not debias:   # no averages, or no step taken yet
      return
    for variable, slot in pairs:
      held = variable.read_value()
      if self.swapped:   # back: trained weights in, the average to its slot
        variable.assign(slot.read_value())
        slot.assign(held * debias)
      else:
        variable.assign(slot.read_value() / debias)
        slot.assign(held)
    self.swapped = not self.swapped

  def on_test_begin(self, logs=None):
    if not self.swapped:
      self.swap()


class _SwapBack(tf_keras.callbacks.Callback):
  """The trained weights back in the model (see `AveragedWeights`)."""

  def __init__(self, averaged: AveragedWeights):
    super().__init__()
    self._averaged = averaged

  def _back(self):
    if self._averaged.swapped:
      self._averaged.swap()

  def on_epoch_end(self, epoch, logs=None):
    self._back()

  def on_train_end(self, logs=None):
    self._back()
