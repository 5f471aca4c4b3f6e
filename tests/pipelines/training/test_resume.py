"""Tests of pipelines/training/resume.py, crash-safe resume: fit segments, step
checkpoints (a kill mid-write, unreadable, a full disk, NaN weights), kill and
restart.

The subprocess test trains the tiny config twice with op determinism: run A
uninterrupted, run B paused after a mid-epoch step checkpoint, SIGKILLed, and
restarted with the same command. B must resume (not restart), end at A's step
count and match A exactly: epoch 1 (trained by two independent processes)
shows that equal seeds give equal runs, epoch 2 (half before the kill, half
after) that no batch was trained twice or skipped.
"""

import errno
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import features as F
from pipelines.training import callbacks as cb
from pipelines.training import resume
from tests.helpers.jobs import ROOT, read_json
from tests.helpers.paused_training import PAUSED_MESSAGE


# Pauses at step 12, inside epoch 2 of 3: the resumed job runs two `fit` calls.
STEPS, EPOCHS, EVERY, PAUSE_AFTER = 8, 3, 2, 11
RUN_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def data(tiny_data):
  """(data_dir, schema) of the tiny preset's synthetic data."""
  return tiny_data, F.FeatureSchema.load(tiny_data)


def test_fit_segments():
  assert resume.fit_segments(0, 8, 2) == [(0, 2, 0)]
  assert resume.fit_segments(12, 8, 2) == [(1, 2, 4)]
  assert resume.fit_segments(3, 8, 3) == [(0, 1, 3), (1, 3, 0)]
  assert resume.fit_segments(8, 8, 3) == [(1, 3, 0)]
  assert resume.fit_segments(16, 8, 2) == []


# --- checkpoints --------------------------------------------------------------

def _small_model():
  model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
  model.compile(optimizer=tf_keras.optimizers.Adam(0.1), loss="mse")
  model.optimizer.build(model.trainable_variables)
  return model


def _checkpoints(directory, steps_per_epoch=10, log=None):
  model = _small_model()
  return model, resume.StepCheckpoints(model, directory, directory,
                                       steps_per_epoch, log=log or print)


def _save_at(model, checkpoints, step):
  model.layers[0].kernel.assign(tf.fill([3, 2], float(step)))
  return checkpoints.save(resume.Progress(step, {"loss": [1.0]}, {"best": 1}))


def test_restore_returns_the_newest_checkpoint(tmp_path):
  model, checkpoints = _checkpoints(str(tmp_path))
  assert checkpoints.restore() == resume.Progress()  # nothing saved yet
  for step in (4, 8):
    _save_at(model, checkpoints, step)
  fresh, reader = _checkpoints(str(tmp_path))
  progress = reader.restore()
  assert progress == resume.Progress(8, {"loss": [1.0]}, {"best": 1})
  np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 8.0)


@pytest.mark.reliability
def test_a_kill_during_a_write_leaves_the_previous_checkpoint(tmp_path):
  model, checkpoints = _checkpoints(str(tmp_path))
  for step in (4, 8):
    _save_at(model, checkpoints, step)
  # What a kill mid-save leaves: partial files of step 12, state not updated.
  (tmp_path / "step-12_temp").mkdir()
  (tmp_path / "step-12_temp" / "part-00000-of-00001.data-00000-of-00001"
   ).write_bytes(b"\0" * 10)
  (tmp_path / "step-12.index").write_bytes(b"half an index")
  fresh, reader = _checkpoints(str(tmp_path))
  assert reader.restore().step == 8
  np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 8.0)


@pytest.mark.reliability
def test_an_unreadable_latest_checkpoint_falls_back(tmp_path):
  model, checkpoints = _checkpoints(str(tmp_path))
  for step in (4, 8):
    _save_at(model, checkpoints, step)
  for name in os.listdir(tmp_path):
    if name.startswith("step-8.data"):
      path = tmp_path / name
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  messages = []
  fresh, reader = _checkpoints(str(tmp_path), log=messages.append)
  assert reader.restore().step == 4
  np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 4.0)
  assert any("step-8 cannot be read" in m for m in messages), messages
  for name in os.listdir(tmp_path):
    if name.startswith("step-4.data"):
      (tmp_path / name).write_bytes(b"")
  with pytest.raises(RuntimeError, match="none of the checkpoints"):
    _checkpoints(str(tmp_path), log=messages.append)[1].restore()


def test_other_steps_per_epoch_is_refused(tmp_path):
  model, checkpoints = _checkpoints(str(tmp_path), steps_per_epoch=10)
  _save_at(model, checkpoints, 4)
  with pytest.raises(ValueError, match="written with 10 steps per epoch"):
    _checkpoints(str(tmp_path), steps_per_epoch=12)[1].restore()


def _small_checkpoints(directory):
  model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
  model.compile(optimizer="adam", loss="mse")
  model.optimizer.build(model.trainable_variables)
  return model, resume.StepCheckpoints(model, directory, directory, 10)


def _disk_full(*args, **kwargs):
  raise OSError(errno.ENOSPC, "No space left on device")


def _tf_disk_full(*args, **kwargs):
  raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")


@pytest.mark.reliability
@pytest.mark.parametrize("fault", [_disk_full, _tf_disk_full])
def test_a_full_disk_names_the_checkpoint_and_keeps_the_earlier(
    tmp_path, monkeypatch, fault):
  model, checkpoints = _small_checkpoints(str(tmp_path))
  model.layers[0].kernel.assign(tf.fill([3, 2], 4.0))
  checkpoints.save(resume.Progress(4))
  before = sorted(os.listdir(tmp_path))
  monkeypatch.setattr(tf.train.Checkpoint, "_write", fault)
  model.layers[0].kernel.assign(tf.fill([3, 2], 8.0))
  with pytest.raises(cb.CheckpointWriteError) as info:
    checkpoints.save(resume.Progress(8))
  assert info.value.errno == errno.ENOSPC
  assert f"cannot write the step checkpoint {tmp_path}/step-8" in str(
      info.value)
  assert "No space left on device" in str(info.value)
  assert "written before are intact" in str(info.value)
  monkeypatch.undo()
  assert sorted(os.listdir(tmp_path)) == before
  fresh, reader = _small_checkpoints(str(tmp_path))
  assert reader.restore().step == 4
  np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 4.0)


@pytest.mark.reliability
def test_a_step_checkpoint_of_nan_weights_is_refused(tmp_path):
  model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
  model.compile(optimizer="adam", loss="mse")
  model.optimizer.build(model.trainable_variables)
  checkpoints = resume.StepCheckpoints(model, str(tmp_path), str(tmp_path), 10)
  checkpoints.save(resume.Progress(4))
  model.layers[0].kernel.assign(tf.fill([3, 2], np.nan))
  with pytest.raises(cb.NonFiniteError, match=r"variable .*kernel.* holds NaN "
                     "or Inf values, so the step checkpoint at global step 8 "
                     "was not written"):
    checkpoints.save(resume.Progress(8))
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("step-4")


# --- kill and resume, for real ------------------------------------------------

OVERRIDES = [f"train.epochs={EPOCHS}", f"train.steps_per_epoch={STEPS}",
             "train.steps_per_execution=1", "runtime.deterministic=true",
             f"train.checkpoint_every_steps={EVERY}",
             # The moving average on: a resumed job must continue from the
             # trained weights, with the averages restored beside them.
             "train.ema_momentum=0.9"]


PAUSING_SCRIPT = os.path.join(ROOT, "tests", "helpers", "paused_training.py")


def _command(model_dir, data_dir):
  return [sys.executable, "-m", "pipelines.train", "--preset=tiny",
          f"--model_dir={model_dir}", f"--data_dir={data_dir}", "--verbose=0",
          *[f"--override={o}" for o in OVERRIDES]]


def _paused_command(model_dir, data_dir, pause_after):
  """The same job, pausing for good after the checkpoint at `pause_after`."""
  return [sys.executable, PAUSING_SCRIPT, str(pause_after), model_dir,
          data_dir, *OVERRIDES]


class _Run:
  """A training subprocess whose output is drained by a thread."""

  def __init__(self, command):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    self.lines = []
    self.process = subprocess.Popen(command, cwd=ROOT, env=env, text=True,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
    self._reader = threading.Thread(target=self._drain, daemon=True)
    self._reader.start()

  def _drain(self):
    for line in self.process.stdout:
      self.lines.append(line)

  @property
  def output(self):
    return "".join(self.lines)

  def wait_for(self, text, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
      if text in self.output:
        return
      if self.process.poll() is not None:
        break
      time.sleep(0.2)
    self.kill()
    pytest.fail(f"{text!r} never printed:\n{self.output[-3000:]}")

  def finish(self, timeout):
    try:
      self.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.kill()
      pytest.fail(f"timed out after {timeout}s:\n{self.output[-3000:]}")
    self._reader.join(timeout=10)
    assert self.process.returncode == 0, self.output[-3000:]
    return self.output

  def kill(self):
    if self.process.poll() is None:
      os.kill(self.process.pid, signal.SIGKILL)
      self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
  """(A, B) model dirs and B's outputs: uninterrupted vs killed + resumed."""
  data_dir, _ = data
  root = tmp_path_factory.mktemp("kill")
  a_dir, b_dir = str(root / "a"), str(root / "b")
  a = _Run(_command(a_dir, data_dir))
  b1 = _Run(_paused_command(b_dir, data_dir, PAUSE_AFTER))
  try:
    b1.wait_for(PAUSED_MESSAGE, RUN_TIMEOUT_S)
    b1.kill()  # SIGKILL: no cleanup, no final checkpoint
    assert b1.process.returncode == -signal.SIGKILL
    b2 = _Run(_command(b_dir, data_dir))
    b2_output = b2.finish(RUN_TIMEOUT_S)
    a.finish(RUN_TIMEOUT_S)
  finally:
    a.kill()
    b1.kill()
  return a_dir, b_dir, b1.output, b2_output


def _variables(path):
  reader = tf.train.load_checkpoint(path)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if "save_counter" not in k}


@pytest.mark.slow  # three training processes, one killed
def test_killed_run_resumes_where_it_stopped(runs):
  a_dir, b_dir, b1_output, b2_output = runs
  assert f"{PAUSED_MESSAGE} 12" in b1_output
  assert ("resuming from the checkpoint at global step 12 (epoch 2, 4 of 8 "
          "steps done)") in b2_output
  state_a = read_json(os.path.join(a_dir, "train_state.json"))
  state_b = read_json(os.path.join(b_dir, "train_state.json"))
  assert state_a["global_step"] == state_b["global_step"] == STEPS * EPOCHS
  assert state_b["resumed_from_step"] == 12
  assert state_a["resumed_from_step"] == 0
  valid_b = read_json(os.path.join(b_dir, "valid_metrics.json"))
  assert all(np.isfinite(valid_b[k]) for k in ("ctr_auc", "cvr_auc",
                                               "ctcvr_auc", "ctr_logloss"))
  # No batch trained twice, none skipped: B ends bitwise where A ends.
  final = f"steps/step-{STEPS * EPOCHS}"
  a_vars = _variables(os.path.join(a_dir, final))
  b_vars = _variables(os.path.join(b_dir, final))
  assert a_vars.keys() == b_vars.keys() and len(a_vars) > 20
  for key in a_vars:
    np.testing.assert_array_equal(a_vars[key], b_vars[key], err_msg=key)
  assert read_json(os.path.join(a_dir, "history.json")) == read_json(
      os.path.join(b_dir, "history.json"))
  assert valid_b == read_json(os.path.join(a_dir, "valid_metrics.json"))


@pytest.mark.slow  # three training processes, one killed
def test_two_runs_with_the_same_seed_are_identical(runs):
  a_dir, b_dir, _, _ = runs
  # Epoch 1 of B ran in the killed process, independently of A.
  history_a = read_json(os.path.join(a_dir, "history.json"))
  history_b = read_json(os.path.join(b_dir, "history.json"))
  for key in ("loss", "ctr_auc", "val_ctcvr_auc", "val_loss"):
    assert history_a[key][0] == history_b[key][0], key
  first = "checkpoints/epoch-001"
  a_vars = _variables(os.path.join(a_dir, first))
  b_vars = _variables(os.path.join(b_dir, first))
  for key in a_vars:
    np.testing.assert_array_equal(a_vars[key], b_vars[key], err_msg=key)
