"""Crash-safe resume: step checkpoints of model, optimizer, step and progress.

A step checkpoint (`<model_dir>/steps/step-<global step>`, written by a
`tf.train.CheckpointManager`) holds the model, the optimizer (slots, step
counter, loss scale), the global step, the steps per epoch and the progress
record (per-epoch history and the best-epoch state) as one atomic unit. It is
written every `train.checkpoint_every_steps` steps and after every epoch's
bookkeeping (validation, best weights, history).

A process killed at any moment and restarted with the same command restores
the newest readable checkpoint, rebuilds the interrupted epoch's data order
(a function of seed and epoch, see `input.make_epochs_dataset`), skips the
steps already trained, runs a partial epoch and continues: every batch is
trained exactly once and the run ends at the same global step.

Why a kill during a write is harmless: TensorFlow writes a checkpoint's data
and index under temporary names and renames them, and the manager rewrites
its `checkpoint` state file (atomically) only after that; a half-written
checkpoint is never listed. A listed checkpoint that cannot be read anyway
(e.g. a truncated file) is reported and the previous one is used.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import tensorflow as tf
import tf_keras

from pipelines.training.callbacks import check_finite_weights
from pipelines.training.callbacks import to_float
from pipelines.training.callbacks import write_checkpoint

STEPS_DIR = "steps"
CHECKPOINT_NAME = "step"


@dataclasses.dataclass
class Progress:
  """What a run has done: global step, per-epoch history, best-epoch state."""

  step: int = 0
  history: dict = dataclasses.field(default_factory=dict)
  best: dict = dataclasses.field(default_factory=dict)


def fit_segments(step: int, steps_per_epoch: int,
                 epochs: int) -> list[tuple[int, int, int]]:
  """`fit` calls left from global `step`: [(initial_epoch, end_epoch, skip)].

  An interrupted epoch becomes its own call of `steps_per_epoch - skip` steps.
  """
  epoch, skip = divmod(step, steps_per_epoch)
  if epoch >= epochs:
    return []
  if not skip:
    return [(epoch, epochs, 0)]
  segments = [(epoch, epoch + 1, skip)]
  if epoch + 1 < epochs:
    segments.append((epoch + 1, epochs, 0))
  return segments


class StepCheckpoints:
  """Saves and restores (model, optimizer, step, progress) atomically.

  Args:
    model: a compiled model whose variables and optimizer slots exist.
    read_dir: the chief's checkpoint directory (restored from).
    write_dir: where this process saves (`read_dir` on the chief, a scratch
      directory on other workers).
    steps_per_epoch: must equal the restored checkpoint's.
    max_to_keep: checkpoints kept.
    log: progress messages.
  """

  def __init__(self, model, read_dir: str, write_dir: str,
               steps_per_epoch: int, max_to_keep: int = 3,
               log: Callable[[str], None] = print):
    self.read_dir, self.steps_per_epoch = read_dir, steps_per_epoch
    self._log = log
    self._model = model
    # (variable, value) of every metric at the restored step: Keras resets the
    # metrics when `fit` starts an epoch, the resumed epoch puts these back.
    self.metric_values = []
    self._step = tf.Variable(0, dtype=tf.int64, trainable=False)
    self._steps_per_epoch = tf.Variable(steps_per_epoch, dtype=tf.int64,
                                        trainable=False)
    self._progress = tf.Variable("{}", dtype=tf.string, trainable=False)
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=model.optimizer, step=self._step,
        steps_per_epoch=self._steps_per_epoch, progress=self._progress)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, write_dir, max_to_keep=max_to_keep,
        checkpoint_name=CHECKPOINT_NAME)

  def save(self, progress: Progress) -> str:
    """Writes `step-<progress.step>`.

    Raises:
      callbacks.NonFiniteError: a model variable holds NaN/Inf (nothing is
        written, so the newest checkpoint stays a finite one).
      callbacks.CheckpointWriteError: the write failed (e.g. a full disk),
        naming the path; the earlier checkpoints are intact.
    """
    check_finite_weights(self._model,
                         f"step checkpoint at global step {progress.step}")
    self._step.assign(progress.step)
    self._steps_per_epoch.assign(self.steps_per_epoch)
    self._progress.assign(json.dumps({"history": progress.history,
                                      "best": progress.best}))
    path = os.path.join(self.manager.directory,
                        f"{CHECKPOINT_NAME}-{progress.step}")
    return write_checkpoint(
        path, lambda: self.manager.save(checkpoint_number=progress.step),
        "step checkpoint")

  def restore(self) -> Progress:
    """The newest readable checkpoint's progress (a fresh one when none).

    Raises:
      ValueError: the checkpoint was written with other steps per epoch.
      RuntimeError: checkpoints are listed but none can be read.
    """
    state = tf.train.get_checkpoint_state(self.read_dir)
    paths = list(state.all_model_checkpoint_paths) if state else []
    errors = []
    for path in reversed(paths):
      try:
        self.checkpoint.restore(path).assert_existing_objects_matched()
      except Exception as e:  # noqa: BLE001  (any unreadable file: fall back)
        first_line = (str(e).splitlines() or [""])[0][:200]
        errors.append(f"{path}: {type(e).__name__}: {first_line}")
        self._log(f"checkpoint {path} cannot be read ({errors[-1]}); trying "
                  "the previous one")
        continue
      written = int(self._steps_per_epoch.numpy())
      if written != self.steps_per_epoch:
        raise ValueError(
            f"checkpoint {path} was written with {written} steps per epoch, "
            f"this run has {self.steps_per_epoch}: resume with the same "
            "config and data, or train into a fresh --model_dir")
      record = json.loads(self._progress.numpy().decode())
      self.metric_values = [(v, v.numpy()) for metric in self._model.metrics
                            for v in metric.variables]
      return Progress(int(self._step.numpy()), record.get("history", {}),
                      record.get("best", {}))
    if paths:
      raise RuntimeError(f"none of the checkpoints listed in {self.read_dir} "
                         f"can be read: {errors}")
    return Progress()


class StepCheckpoint(tf_keras.callbacks.Callback):
  """Saves step checkpoints mid-epoch and after each epoch's bookkeeping.

  Put it last in the callback list: at an epoch end it records the epoch's
  logs and the best-epoch state after the other callbacks ran.

  Args:
    checkpoints: a StepCheckpoints.
    progress: the restored Progress (updated in place).
    best: the BestEpoch callback (its state is checkpointed).
    every: mid-epoch interval in global steps (0: epoch ends only).
  """

  def __init__(self, checkpoints: StepCheckpoints, progress: Progress, best,
               every: int):
    super().__init__()
    # Keeps batch hooks allowed under parameter_server (they do nothing there:
    # `every` is 0) and spares Keras converting logs to numpy every batch.
    self._supports_tf_logs = True
    self.checkpoints, self.progress, self.best = checkpoints, progress, best
    self.every = every
    self.steps = checkpoints.steps_per_epoch
    self._first_epoch, self._skip, self._epoch, self._base = 0, 0, 0, 0

  def begin_segment(self, initial_epoch: int, skip: int) -> None:
    """Tells the callback where the next `fit` call starts."""
    self._first_epoch, self._skip = initial_epoch, skip

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    resumed = epoch == self._first_epoch and self._skip
    self._base = epoch * self.steps + (self._skip if resumed else 0)
    if resumed:  # the epoch's metrics so far, as the killed process had them
      for variable, value in self.checkpoints.metric_values:
        variable.assign(value)

  def on_train_batch_end(self, batch, logs=None):
    if not self.every:
      return
    step = self._base + batch + 1  # `batch`: last index of the execution
    if step >= (self._epoch + 1) * self.steps:
      return  # the epoch end saves, after validation and best weights
    if step // self.every > self.progress.step // self.every:
      self.progress.step = step
      self.checkpoints.save(self.progress)

  def on_epoch_end(self, epoch, logs=None):
    history = self.progress.history
    for key, value in (logs or {}).items():
      history[key] = history.get(key, [])[:epoch] + [to_float(value)]
    self.progress.best = self.best.state()
    self.progress.step = (epoch + 1) * self.steps
    self.checkpoints.save(self.progress)
