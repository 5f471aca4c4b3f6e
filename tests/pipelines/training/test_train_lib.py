"""Tests of pipelines/training/train_lib.py: the training job on the tiny
preset (artifacts, validation report), the model directory checks, a full disk,
converted multivalent data, and the XLA + bfloat16 job."""

import errno
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import config as config_lib
from adaftr_tf import experiments
from adaftr_tf import overrides
from pipelines.training import callbacks as cb
from pipelines.training import resume
from pipelines.training import train_lib
from tests.helpers.conversion import convert
from tests.helpers.data import PAPER_READING
from tests.helpers.data import tiny_config
from tests.helpers.jobs import (ROOT, TIMEOUT_S, check, env, read_json,
                                train_command)
from tests.helpers.samples import write_aliccp_raw


def test_tiny_run_writes_every_artifact(tiny_run):
  model_dir = tiny_run["model_dir"]
  for name in ("config.json", "schema.json", "history.json",
               "valid_metrics.json", "reliability_valid.png",
               "best/weights.index"):
    assert os.path.exists(os.path.join(model_dir, name)), name
  checkpoints = os.listdir(os.path.join(model_dir, "checkpoints"))
  assert {"epoch-001.index", "epoch-002.index"} <= set(checkpoints)
  events = [f for _, _, files in os.walk(os.path.join(model_dir, "tensorboard"))
            for f in files if f.startswith("events.out.tfevents")]
  assert len(events) >= 3  # train, validation, tau histogram
  with open(os.path.join(model_dir, "config.json")) as f:
    assert config_lib.Config.from_json(f.read()) == tiny_run["config"]
  with open(os.path.join(model_dir, "history.json")) as f:
    history = json.load(f)
  assert len(history["loss"]) == 2
  assert all(np.isfinite(history["val_ctcvr_auc"]))


def test_valid_report_has_metrics_tau_and_oracle(tiny_run):
  valid = tiny_run["valid"]
  for key in ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_logloss", "cvr_logloss",
              "ctcvr_logloss", "ctr_ece", "tau_mean", "tau_p5", "tau_p95",
              "oracle_ctr_auc", "oracle_cvr_auc", "oracle_ctcvr_auc",
              "spearman_neg_tau_vs_r", "best_epoch", "ctr_gauc", "cvr_gauc",
              "ctcvr_gauc", "ctr_reliability", "cvr_segments"):
    assert key in valid, key
  assert valid["group_field"] == "categorical_1"   # data.group_field=auto
  config = tiny_run["config"]
  assert config.loss.tau_min <= valid["tau_p5"] <= valid["tau_p95"] <= config.loss.tau_max
  assert valid["best_epoch"] in (1, 2)
  assert valid["ctr_auc"] > 0.5  # learns something on 2 epochs of 4k rows


def test_resuming_with_another_config_is_refused(tmp_path):
  config = experiments.get_preset("tiny")
  (tmp_path / "config.json").write_text(config.to_json())
  train_lib.check_resumable(config, str(tmp_path))  # no checkpoints: fine
  (tmp_path / resume.STEPS_DIR).mkdir()
  (tmp_path / resume.STEPS_DIR / "checkpoint").write_text("")
  longer = overrides.apply(config, ["train.epochs=5",
                                               "runtime.strategy=mirrored"])
  train_lib.check_resumable(longer, str(tmp_path))
  wider = overrides.apply(config, ["model.embedding_dim=16"])
  with pytest.raises(ValueError, match="model.embedding_dim: stored 4, now "
                     "16.*fresh --model_dir"):
    train_lib.check_resumable(wider, str(tmp_path))
  # A field added after the run started takes its default.
  older = json.loads(config.to_json())
  del older["loss"]["one_way"]
  (tmp_path / "config.json").write_text(json.dumps(older))
  train_lib.check_resumable(config, str(tmp_path))
  with pytest.raises(ValueError, match="loss.one_way: stored False, now True"):
    train_lib.check_resumable(overrides.apply(config, ["loss.one_way=true"]),
                              str(tmp_path))


# --- model directory, full disk -----------------------------------------------

def _tiny(*items):
  return tiny_config("model.name=multitask", "train.steps_per_epoch=4",
                     "train.steps_per_execution=2",
                     "train.checkpoint_every_steps=2", *items)


@pytest.fixture
def data(tiny_data):
  return tiny_data


@pytest.mark.reliability
def test_a_model_dir_under_a_file_is_refused_before_any_work(tmp_path, data):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  model_dir = str(blocker / "model")
  with pytest.raises(OSError, match=f"--model_dir {model_dir} is not "
                     "writable"):
    train_lib.train(_tiny(), model_dir, str(tmp_path / "fresh_data"),
                   verbose=0, log=lambda _: None)
  assert not os.path.exists(tmp_path / "fresh_data")  # refused before data


@pytest.mark.reliability
def test_a_read_only_model_dir_is_refused(tmp_path, data):
  model_dir = tmp_path / "model"
  model_dir.mkdir()
  model_dir.chmod(0o555)
  try:
    if os.access(model_dir, os.W_OK):
      pytest.skip("running as root: permissions do not block writes (the "
                  "file-as-parent test covers the same check)")
    with pytest.raises(PermissionError, match=f"--model_dir {model_dir} is "
                       "not writable"):
      train_lib.train(_tiny(), str(model_dir), data, verbose=0,
                     log=lambda _: None)
  finally:
    model_dir.chmod(0o755)


def _disk_full(*args, **kwargs):
  raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.reliability
@pytest.mark.slow  # trains until the disk fills
def test_a_full_disk_during_training_stops_naming_the_path(tmp_path, data,
                                                           monkeypatch):
  model_dir = tmp_path / "model"
  real_write = tf.train.Checkpoint._write

  def full_after_two(self, prefix, *args, **kwargs):
    if "step-4" in prefix or "epoch-" in prefix or "best" in prefix:
      return _disk_full()
    return real_write(self, prefix, *args, **kwargs)

  monkeypatch.setattr(tf.train.Checkpoint, "_write", full_after_two)
  with pytest.raises(cb.CheckpointWriteError,
                     match=r"cannot write the (epoch weights|best-epoch "
                           r"weights|step checkpoint) .*" + str(model_dir)):
    train_lib.train(_tiny(), str(model_dir), data, verbose=0,
                   log=lambda _: None)
  monkeypatch.undo()
  steps = str(model_dir / resume.STEPS_DIR)
  assert tf.train.latest_checkpoint(steps).endswith("step-2")
  tf.train.load_checkpoint(tf.train.latest_checkpoint(steps))  # readable


# --- converted data, XLA ------------------------------------------------------

@pytest.mark.slow  # converts, then trains 3 steps
def test_training_job_on_converted_aliccp_raw(tmp_path):
  """Multivalent lists go through fit, evaluation and the model's outputs."""
  folder = write_aliccp_raw(tmp_path / "raw", samples=120, sessions=6)
  convert("aliccp_raw", folder, tmp_path / "data", valid_fraction=0.25)
  config = overrides.apply(experiments.get_preset("tiny"), [
      "train.batch_size=16", "train.eval_batch_size=64",
      "train.steps_per_epoch=3", "train.steps_per_execution=1"])
  result = train_lib.train(config, str(tmp_path / "model"),
                          str(tmp_path / "data"), verbose=0,
                          log=lambda _: None)
  schema = result["schema"]
  assert schema.has_multivalent and "f110_14" in schema.feature_names
  assert result["valid"]["num_examples"] == 30
  assert np.isfinite(result["valid"]["ctr_logloss"])


def test_tau_from_the_planted_relatedness_trains_on_synthetic_data(
    tiny_data, tmp_path):
  """The oracle columns flow from the files into the loss (train and valid
  batches); the trained model's outputs carry no tau."""
  config = tiny_config(*PAPER_READING, "loss.tau_source=oracle",
                       "train.steps_per_epoch=4",
                       "train.steps_per_execution=2")
  result = train_lib.train(config, str(tmp_path / "model"), tiny_data,
                           verbose=0, log=lambda _: None)
  history = read_json(tmp_path / "model" / "history.json")
  assert np.isfinite(history["cl_loss"][0]) and history["cl_loss"][0] > 0
  assert np.isfinite(history["val_cl_loss"][0])
  # The batches' tau: the oracle's, between the bounds, spread with r.
  assert 0.05 < history["tau_mean"][0] < 1.0
  assert "tau_mean" not in result["valid"]   # no tau at inference


def test_a_delayed_alignment_starts_at_its_fraction_of_the_run(
    tiny_data, tmp_path, monkeypatch):
  """loss.alignment_start=0.5 of 2 epochs x 4 steps: the job compiles the
  model it trains with the run's steps, so its alignment starts at step 4,
  and trains with finite losses."""
  from adaftr_tf import models
  compiled, compile_model = [], models.compile_model
  monkeypatch.setattr(models, "compile_model", lambda *a, **k: (
      compiled.append(compile_model(*a, **k)) or compiled[-1]))
  config = tiny_config("loss.relatedness_signal=transfer_gate",
                       "loss.alignment_start=0.5", "train.epochs=2",
                       "train.steps_per_epoch=4", "train.steps_per_execution=2")
  train_lib.train(config, str(tmp_path / "model"), tiny_data, verbose=0,
                  log=lambda _: None)
  assert [m.alignment_task.start_step for m in compiled] == [4]
  assert int(compiled[0].optimizer.iterations.numpy()) == 8
  history = read_json(tmp_path / "model" / "history.json")
  assert np.all(np.isfinite(history["loss"])) and len(history["loss"]) == 2


def test_tau_from_the_planted_relatedness_refuses_converted_data(tmp_path):
  folder = write_aliccp_raw(tmp_path / "raw", samples=40, sessions=4)
  convert("aliccp_raw", folder, tmp_path / "data", valid_fraction=0.25)
  config = tiny_config(*PAPER_READING, "loss.tau_source=shuffled_oracle")
  with pytest.raises(ValueError, match="loss.tau_source=shuffled_oracle reads "
                     "the planted relatedness, which only synthetic data has"):
    train_lib.train(config, str(tmp_path / "model"), str(tmp_path / "data"),
                    verbose=0, log=lambda _: None)
  assert not (tmp_path / "model" / "steps").exists()


@pytest.mark.slow  # a training subprocess
def test_xla_and_bfloat16_training_job(tiny_data, tmp_path):
  done = subprocess.run(
      train_command(tmp_path / "model", tiny_data, overrides=[
          "runtime.jit_compile=true", "runtime.mixed_precision=mixed_bfloat16"]),
      cwd=ROOT, env=env(), capture_output=True, text=True,
      timeout=TIMEOUT_S, check=False)
  check(done)
  valid = read_json(tmp_path / "model" / "valid_metrics.json")
  assert np.isfinite(valid["ctcvr_logloss"])


def test_averaging_schedule_and_isotonic_calibration_in_the_training_job(
    tiny_data, tmp_path):
  """One job with the optional optimisation settings (one run: each costs
  a training job). train.ema_momentum: the epoch (and best) weights are the
  optimizer's moving averages at the epoch's end (slot / (1 - m^t)),
  validation scored them, and the step checkpoint keeps the trained weights
  beside them. train.lr_schedule=warmup_cosine gets the job's step count;
  the isotonic calibrators are fitted after training and stored."""
  from adaftr_tf import models
  from adaftr_tf import optimizers
  from pipelines.data import reader
  from pipelines.training import model_dir as model_dir_lib
  config = tiny_config("train.ema_momentum=0.5", "train.steps_per_epoch=4",
                       "train.epochs=2", "train.steps_per_execution=2",
                       "train.lr_schedule=warmup_cosine",
                       "train.calibration=isotonic")
  root = str(tmp_path / "model")
  result = train_lib.train(config, root, tiny_data, verbose=0,
                           log=lambda _: None)
  schema = result["schema"]
  valid = reader.make_dataset(tiny_data, "valid", schema,
                              config.train.eval_batch_size, training=False)

  def built():  # every variable, the losses' and the optimizer's included
    model = models.compile_model(models.build_model(config, schema), config,
                                 total_steps=8)
    model.evaluate(valid.take(1), steps=1, verbose=0)
    model.optimizer.build(model.trainable_variables)
    return model

  # The trained weights and their averages at the end of epoch 2.
  trained = built()
  tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).restore(
      os.path.join(root, resume.STEPS_DIR, "step-8")).expect_partial()
  pairs = optimizers.averaged_pairs(trained.optimizer,
                                    trained.trainable_variables)
  saved = built()
  saved.load_weights(os.path.join(
      root, model_dir_lib.EPOCH_WEIGHTS_DIR, "epoch-002")).expect_partial()
  saved_values = {v.name: v.numpy() for v in saved.trainable_variables}
  assert len(pairs) == len(saved_values) > 5
  differ = 0
  debias = 1 - 0.5 ** 8   # 2 epochs of 4 steps
  for variable, average in pairs:
    np.testing.assert_allclose(saved_values[variable.name],
                               average.numpy() / debias, rtol=1e-6,
                               atol=1e-7, err_msg=variable.name)
    differ += not np.array_equal(variable.numpy(), average.numpy())
  assert differ > 5
  # Validation in `fit` scored the averages.
  steps = sum(1 for _ in valid)
  scores = saved.evaluate(valid, steps=steps, verbose=0, return_dict=True)
  history = read_json(os.path.join(root, "history.json"))
  assert scores["ctcvr_auc"] == pytest.approx(history["val_ctcvr_auc"][1],
                                              abs=1e-6)
  # The schedule and the calibrators.
  assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
  stored = model_dir_lib.read_calibration(root)
  assert stored == result["calibration"] and stored.method == "isotonic"
  assert set(stored.curves) == {"ctr_logit", "cvr_logit", "ctcvr_logit"}
  calibrated = result["valid"]["calibrated"]
  assert calibrated["ctr_auc"] == pytest.approx(result["valid"]["ctr_auc"])
  assert abs(calibrated["ctr_pred_obs_ratio"] - 1) < abs(
      result["valid"]["ctr_pred_obs_ratio"] - 1) + 0.02
  assert scores["loss"] == pytest.approx(history["val_loss"][1], rel=1e-5)


@pytest.mark.slow  # generates a log with a 1M-id field and trains 2 steps
def test_dense_adam_on_a_million_row_table_warns_at_start(tmp_path):
  config = tiny_config("data.synthetic.vocab_size=1000001",
                       "data.synthetic.num_train=512",
                       "train.steps_per_epoch=2", "model.name=multitask")
  lines = []
  train_lib.train(config, str(tmp_path / "model"), str(tmp_path / "data"),
                  verbose=0, log=lines.append)
  warnings = [line for line in lines if line.startswith("warning: ")]
  assert len(warnings) == 1 and "1,000,002 rows of the categorical_1" in (
      warnings[0])   # (lazy_adam: no warning, tests/adaftr_tf/test_optimizers)
