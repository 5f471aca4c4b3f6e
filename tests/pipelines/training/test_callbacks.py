"""Tests of pipelines/training/callbacks.py: the best epoch and early stopping
(from scripted epoch logs), the epoch weights, the non-finite guard, failed
writes, and the relatedness diagnostics of a real run."""

import errno
import json
import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import models
from pipelines.training import callbacks as cb
from pipelines.training import resume
from pipelines.training import train_lib
from tests.helpers.data import tiny_config

NAN, INF = float("nan"), float("inf")


class _Recorder:
  """A stand-in model: records the paths its weights are saved to."""

  def __init__(self):
    self.saved, self.stop_training = [], False

  def save_weights(self, path):
    self.saved.append(path)


def _best_epoch(monitor, patience=0, path="best/weights"):
  callback = cb.BestEpoch(monitor, path, patience=patience)
  callback.set_model(_Recorder())
  return callback


def _run(callback, values, first_epoch=0):
  """Feeds `values` as the monitor's value of consecutive epochs; returns, per
  epoch, (saved this epoch, wait count, exhausted)."""
  trace = []
  for epoch, value in enumerate(values, start=first_epoch):
    saves = len(callback.model.saved)
    callback.on_epoch_end(epoch, {callback.monitor: value, "loss": 0.5})
    trace.append((len(callback.model.saved) > saves, callback.state()["wait"],
                  callback.exhausted))
  return trace


def _small_model():
  model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
  model.compile(optimizer=tf_keras.optimizers.Adam(0.1), loss="mse")
  model.optimizer.build(model.trainable_variables)
  return model


# --- BestEpoch: which epoch is best -------------------------------------------

def test_best_epoch_maximises_an_auc():
  callback = _best_epoch("val_ctcvr_auc")
  assert callback.mode_max
  trace = _run(callback, [0.60, 0.70, 0.65, 0.72, 0.71])
  assert [saved for saved, _, _ in trace] == [True, True, False, True, False]
  assert callback.best == 0.72 and callback.best_epoch == 4
  assert callback.model.saved == ["best/weights"] * 3


def test_best_epoch_minimises_a_loss():
  callback = _best_epoch("val_loss")
  assert not callback.mode_max
  trace = _run(callback, [1.0, 0.8, 0.9, 0.5, 0.6])
  assert [saved for saved, _, _ in trace] == [True, True, False, True, False]
  assert callback.best == 0.5 and callback.best_epoch == 4
  assert callback.state() == {"best": 0.5, "best_epoch": 4, "wait": 1}


@pytest.mark.parametrize("monitor, values", [
    ("val_ctr_auc", [0.6, 0.7, 0.7, 0.7]), ("val_loss", [0.9, 0.4, 0.4, 0.4])])
def test_a_tie_keeps_the_first_best_epoch_and_counts_as_no_improvement(
    monitor, values):
  callback = _best_epoch(monitor)
  trace = _run(callback, values)
  assert [saved for saved, _, _ in trace] == [True, True, False, False]
  assert [wait for _, wait, _ in trace] == [0, 0, 1, 2]
  assert callback.best_epoch == 2 and callback.best == values[1]


@pytest.mark.parametrize("monitor, values, best", [
    ("val_ctr_auc", [NAN, 0.6, NAN, INF, 0.5], 0.6),
    ("val_loss", [NAN, 0.6, NAN, -INF, 0.7], 0.6)])
def test_non_finite_values_never_become_best(monitor, values, best):
  callback = _best_epoch(monitor)
  trace = _run(callback, values)
  assert [saved for saved, _, _ in trace] == [False, True, False, False, False]
  assert callback.best == best and callback.best_epoch == 2
  assert [wait for _, wait, _ in trace] == [1, 0, 1, 2, 3]
  assert callback.model.saved == ["best/weights"]


def test_only_non_finite_values_leave_no_best_epoch():
  callback = _best_epoch("val_ctr_auc")
  _run(callback, [NAN, NAN])
  assert (callback.best, callback.best_epoch) == (None, None)
  assert callback.model.saved == []


def test_the_saved_weights_are_the_best_epochs(tmp_path):
  """A real model whose kernel holds the epoch number: the weights file left
  behind is the best epoch's, not the last one's."""
  path = str(tmp_path / "best" / "weights")
  model = _small_model()
  callback = cb.BestEpoch("val_cvr_auc", path)
  callback.set_model(model)
  for epoch, auc in enumerate([0.55, 0.61, 0.58, 0.60]):
    model.layers[0].kernel.assign(tf.fill([3, 2], float(epoch + 1)))
    callback.on_epoch_end(epoch, {"val_cvr_auc": auc})
  assert callback.best_epoch == 2
  restored = _small_model()
  restored.load_weights(path)
  np.testing.assert_array_equal(restored.layers[0].kernel.numpy(), 2.0)
  assert not model.stop_training


# --- BestEpoch: early stopping ------------------------------------------------

def test_patience_counts_epochs_without_improvement_and_stops():
  callback = _best_epoch("val_ctcvr_auc", patience=2)
  trace = _run(callback, [0.50, 0.60, 0.55, 0.61, 0.59])
  assert [wait for _, wait, _ in trace] == [0, 0, 1, 0, 1]
  assert not any(exhausted for _, _, exhausted in trace)
  assert not callback.model.stop_training
  trace = _run(callback, [0.60], first_epoch=5)
  assert trace == [(False, 2, True)]
  assert callback.model.stop_training
  assert callback.best_epoch == 4


def test_patience_zero_never_stops():
  callback = _best_epoch("val_loss", patience=0)
  trace = _run(callback, [0.5] + [0.9] * 6)
  assert trace[-1] == (False, 6, False)
  assert not callback.model.stop_training


def test_a_resumed_run_continues_the_count():
  """The state travels in the step checkpoints (as JSON): a callback given
  the killed run's state stops at the same epoch as an uninterrupted run."""
  values = [0.50, 0.60, 0.58, 0.57, 0.59, 0.55]
  uninterrupted = _best_epoch("val_ctr_auc", patience=3)
  whole = _run(uninterrupted, values)
  assert [exhausted for _, _, exhausted in whole] == [False] * 4 + [True, True]
  killed = _best_epoch("val_ctr_auc", patience=3)
  _run(killed, values[:3])
  state = json.loads(json.dumps(killed.state()))
  assert state == {"best": 0.6, "best_epoch": 2, "wait": 1}
  resumed = _best_epoch("val_ctr_auc", patience=3)
  resumed.set_state(state)
  assert resumed.state() == state
  rest = _run(resumed, values[3:], first_epoch=3)
  assert rest == whole[3:]
  assert resumed.model.stop_training
  assert (resumed.best, resumed.best_epoch) == (0.6, 2)
  resumed.set_state(None)  # a fresh run
  assert resumed.state() == {"best": None, "best_epoch": None, "wait": 0}
  assert not resumed.exhausted


def test_a_missing_monitor_names_the_available_keys():
  callback = _best_epoch("val_ctcvr_auc")
  with pytest.raises(ValueError, match=r"checkpoint metric 'val_ctcvr_auc' "
                     r"missing from the epoch logs; have \['loss', 'val_loss'\]"):
    callback.on_epoch_end(0, {"val_loss": 0.3, "loss": 0.2})
  with pytest.raises(ValueError, match=r"have \[\]"):
    callback.on_epoch_end(0, None)
  assert callback.model.saved == [] and callback.best is None


def test_a_failed_best_weights_write_names_the_path():
  callback = _best_epoch("val_loss", path="/somewhere/best/weights")

  def full(path):
    raise OSError(errno.ENOSPC, "No space left on device")

  callback.model.save_weights = full
  with pytest.raises(cb.CheckpointWriteError) as info:
    callback.on_epoch_end(0, {"val_loss": 0.4})
  assert info.value.errno == errno.ENOSPC
  assert ("cannot write the best-epoch weights /somewhere/best/weights: "
          "OSError") in str(info.value)
  assert "checkpoints written before are intact" in str(info.value)


# --- EpochWeights -------------------------------------------------------------

def test_epoch_weights_are_saved_as_numbered_checkpoints(tmp_path):
  model = _small_model()
  callback = cb.EpochWeights(str(tmp_path))
  callback.set_model(model)
  for epoch in (0, 1, 11):
    model.layers[0].kernel.assign(tf.fill([3, 2], float(epoch)))
    callback.on_epoch_end(epoch, {"loss": 1.0})
  assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".index")) == [
      "epoch-001.index", "epoch-002.index", "epoch-012.index"]
  restored = _small_model()
  restored.load_weights(str(tmp_path / "epoch-002"))
  np.testing.assert_array_equal(restored.layers[0].kernel.numpy(), 1.0)


def test_a_failed_epoch_weights_write_names_the_path(tmp_path):
  recorder = _Recorder()

  def read_only(path):
    raise tf.errors.PermissionDeniedError(None, None, "read-only file system")

  recorder.save_weights = read_only
  callback = cb.EpochWeights(str(tmp_path))
  callback.set_model(recorder)
  with pytest.raises(cb.CheckpointWriteError) as info:
    callback.on_epoch_end(2, {})
  assert info.value.errno == errno.EACCES
  assert f"cannot write the epoch weights {tmp_path}/epoch-003" in str(
      info.value)


# --- NonFiniteGuard -----------------------------------------------------------

def _guard(tmp_path, check_batches=True, step=7):
  model = _small_model()
  model.optimizer.iterations.assign(step)
  guard = cb.NonFiniteGuard(8, str(tmp_path), check_batches=check_batches)
  guard.set_model(model)
  return guard, model


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_a_non_finite_batch_loss_stops_naming_the_step(tmp_path, value):
  guard, _ = _guard(tmp_path)
  guard.on_epoch_begin(1)
  guard.on_train_batch_end(3, {"loss": 0.4})  # finite: nothing happens
  guard.on_train_batch_end(3, {})  # no loss in the logs: nothing either
  with pytest.raises(cb.NonFiniteError) as info:
    guard.on_train_batch_end(4, {"loss": tf.constant(value)})
  message = str(info.value)
  assert f"the loss is {value} after global step 7 (epoch 2)" in message
  assert "the last good step checkpoint is none yet" in message
  assert "learning_rate" in message


def test_the_message_names_the_last_step_checkpoint(tmp_path):
  steps_dir = str(tmp_path / "steps")
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(v=tf.Variable(1.0)), steps_dir, max_to_keep=1,
      checkpoint_name="step")
  path = manager.save(checkpoint_number=6)
  guard, _ = _guard(steps_dir)
  with pytest.raises(cb.NonFiniteError, match="last good step checkpoint is "
                     + re.escape(path) + " "):
    guard.on_train_batch_end(0, {"loss": NAN})


def test_batch_checks_can_be_off(tmp_path):
  guard, _ = _guard(tmp_path, check_batches=False)
  guard.on_train_batch_end(0, {"loss": NAN})  # parameter servers: no check
  with pytest.raises(cb.NonFiniteError, match="the loss is nan at the end of "
                     r"the epoch \(epoch 1\)"):
    guard.on_epoch_end(0, {"loss": NAN, "val_loss": 0.2})


def test_a_non_finite_validation_loss_stops_at_the_epoch_end(tmp_path):
  guard, _ = _guard(tmp_path)
  guard.on_epoch_begin(2)
  guard.on_epoch_end(2, {"loss": 0.3, "val_loss": 0.2})  # finite: passes
  with pytest.raises(cb.NonFiniteError,
                     match=r"the val_loss is inf at the end of the epoch "
                           r"\(epoch 3\)"):
    guard.on_epoch_end(2, {"loss": 0.3, "val_loss": INF})


def test_non_finite_weights_stop_before_the_epoch_end_saves(tmp_path):
  guard, model = _guard(tmp_path)
  model.layers[0].bias.assign([0.0, NAN])
  with pytest.raises(cb.NonFiniteError, match=r"variable .*bias.* holds NaN "
                     "or Inf values, so the epoch-end checkpoints was not "
                     "written"):
    guard.on_epoch_end(0, {"loss": 0.3})


def test_to_float_reads_tensors_and_remote_values():
  class Remote:  # a parameter-server RemoteValue
    def fetch(self):
      return np.float32(2.5)

  assert cb.to_float(Remote()) == 2.5
  assert cb.to_float(tf.constant(1.5)) == 1.5
  assert math.isnan(cb.to_float(np.array(NAN, np.float32)))


# --- in a training job --------------------------------------------------------

def test_tensorboard_has_the_relatedness_diagnostics(tiny_run):
  folder = os.path.join(tiny_run["model_dir"], "tensorboard", "tau")
  tags = {}
  for name in os.listdir(folder):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(folder,
                                                                  name)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  for tag in ("tau", "predicted_relatedness", "agreement", "tau_mean",
              "predicted_relatedness_mean", "agreement_mean",
              "spearman_neg_tau_vs_r", "spearman_agreement_vs_r",
              "tau_at_min", "tau_at_max"):
    assert sorted(tags.get(tag, [])) == [0, 1], (tag, sorted(tags))
  # The fractions at the bounds are in the epoch history too.
  with open(os.path.join(tiny_run["model_dir"], "history.json")) as f:
    history = json.load(f)
  for key in ("tau_at_min", "tau_at_max"):
    assert len(history[key]) == 2 and all(0 <= v <= 1 for v in history[key])


# --- a NaN loss in a training job ---------------------------------------------

def _tiny(*items):
  return tiny_config("train.steps_per_epoch=8", "train.steps_per_execution=2",
                     "train.checkpoint_every_steps=2", *items)


NAN_FROM_STEP = 12  # optimizer.iterations at which the loss turns NaN


def _weights_finite(model_dir, prefix):
  """Every float model variable stored in a checkpoint is finite."""
  reader = tf.train.load_checkpoint(os.path.join(model_dir, prefix))
  names = [n for n in reader.get_variable_to_shape_map()
           if "/.ATTRIBUTES/VARIABLE_VALUE" in n and "optimizer" not in n
           and reader.get_variable_to_dtype_map()[n].is_floating]
  assert names
  return all(np.isfinite(reader.get_tensor(n)).all() for n in names)


@pytest.mark.reliability
@pytest.mark.slow  # trains into the second epoch
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path,
                                                           monkeypatch):
  original = models.CtrCvrModel.compute_loss

  def nan_loss(self, inputs, training=False):
    loss = original(self, inputs, training)
    if not training:
      return loss
    broken = self.optimizer.iterations >= NAN_FROM_STEP
    return loss * tf.where(broken, float("nan"), 1.0)  # NaN gradients too

  monkeypatch.setattr(models.CtrCvrModel, "compute_loss", nan_loss)
  model_dir = str(tmp_path / "model")
  with pytest.raises(cb.NonFiniteError) as info:
    train_lib.train(_tiny("train.epochs=3"), model_dir, tiny_data, verbose=0,
                   log=lambda _: None)
  message = str(info.value)
  assert "loss is nan after global step 14 (epoch 2)" in message
  assert "step-12" in message and "learning_rate" in message
  steps_dir = os.path.join(model_dir, resume.STEPS_DIR)
  assert tf.train.latest_checkpoint(steps_dir).endswith("step-12")
  assert _weights_finite(steps_dir, "step-12")
  assert _weights_finite(model_dir, "checkpoints/epoch-001")
  assert _weights_finite(model_dir, "best/weights")
  assert not os.path.exists(os.path.join(model_dir, "checkpoints",
                                         "epoch-002.index"))
