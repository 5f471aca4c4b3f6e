"""Tests of the `python -m pipelines.train` entrypoint (its absl main) on the
tiny preset: a run end to end, and settings refused before anything is
written."""

import json
import os
import subprocess

from absl import flags
from absl.testing import flagsaver
import pytest

from pipelines import train as train_main
from tests.helpers import jobs
from tests.helpers.flags import run_main

FLAGS = flags.FLAGS


def _parse(argv):
  FLAGS.unparse_flags()
  FLAGS(["train"] + argv)


@pytest.mark.slow  # a training run
def test_train_entrypoint_main_runs_end_to_end(tmp_path, tiny_run, capsys):
  run_main(train_main, [
      f"--model_dir={tmp_path / 'model'}", "--preset=tiny",
      f"--data_dir={tiny_run['data_dir']}", "--verbose=0",
      "--override=train.steps_per_epoch=5", "--override=model.name=multitask"],
           "train")
  assert "valid CTR AUC" in capsys.readouterr().out
  with open(tmp_path / "model" / "config.json") as f:
    saved = json.load(f)
  assert saved["model"]["name"] == "multitask"
  assert saved["train"]["steps_per_epoch"] == 5


@pytest.mark.parametrize("argv, message", [
    (["--preset=nope"], "unknown preset 'nope'; valid presets"),
    (["--override=loss.nope=1"], "unknown config key 'loss.nope'"),
    (["--override=train.batch_size=abc"], "train.batch_size must be an int"),
    (["--override=loss.tau_min=2.0"], "loss.tau_min=2.0 must be < loss.tau_max"),
    (["--override=model.name=foo"], "model.name='foo' is not valid"),
])
def test_bad_config_fails_before_anything_is_written(tmp_path, argv, message):
  with flagsaver.flagsaver():
    _parse([f"--model_dir={tmp_path / 'model'}"] + argv)
    with pytest.raises(ValueError, match=message):
      train_main.main(["train"])
  assert not os.path.exists(tmp_path / "model")


@pytest.mark.parametrize("argv, error, message", [
    (["--strategy=multi_worker_mirrored"], ValueError, "needs TF_CONFIG"),
    (["--in_process_cluster=2,1"], Exception, "only for --strategy="
     "parameter_server"),
    (["--override=runtime.strategy=parameter_server",
      "--override=runtime.deterministic=true"], ValueError,
     "cannot hold under runtime.strategy=parameter_server"),
    (["--override=runtime.mixed_precision=float64"], ValueError,
     "runtime.mixed_precision='float64' is not valid"),
    (["--data_service=localhost"], ValueError,
     "data.service='localhost' must look like grpc://HOST:PORT or HOST:PORT"),
    (["--data_service=localhost:5050", "--strategy=parameter_server"],
     ValueError, "data.service with runtime.strategy=parameter_server"),
])
def test_entrypoint_refuses_before_writing(tmp_path, monkeypatch, argv,
                                           error, message):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["train", f"--model_dir={tmp_path / 'model'}", "--preset=tiny",
           *argv])
    with pytest.raises(error, match=message):
      train_main.main(["train"])
  assert not os.path.exists(tmp_path / "model")


@pytest.mark.slow  # a training run fed by an in-process tf.data service
def test_training_reads_its_input_from_a_data_service(tmp_path, tiny_data,
                                                      data_service, capsys):
  run_main(train_main, [
      f"--model_dir={tmp_path / 'model'}", "--preset=tiny",
      f"--data_dir={tiny_data}", "--verbose=0", f"--data_service={data_service}",
      "--override=train.steps_per_epoch=4", "--override=train.epochs=2",
      "--override=model.name=multitask"], "train")
  out = capsys.readouterr().out
  assert f"read by the tf.data service at {data_service}" in out
  assert "valid CTR AUC" in out
  with open(tmp_path / "model" / "config.json") as f:
    assert json.load(f)["data"]["service"] == data_service
  with open(tmp_path / "model" / "train_state.json") as f:
    assert json.load(f)["global_step"] == 8


@pytest.mark.slow  # a training process on 2 logical CPU devices
def test_mirrored_training_reads_from_a_data_service(tmp_path, tiny_data,
                                                     data_service):
  """One input pipeline, 2 replicas: a separate training process reads its
  batches from this process's dispatcher and workers over localhost."""
  output = jobs.check(subprocess.run(
      jobs.train_command(tmp_path / "model", tiny_data, "--strategy=mirrored",
                         "--num_cpu_devices=2",
                         f"--data_service={data_service}"),
      cwd=jobs.ROOT, env=jobs.env(), capture_output=True, text=True,
      timeout=jobs.TIMEOUT_S))
  assert "2 replica(s) in sync" in output
  assert f"read by the tf.data service at {data_service}" in output
  state = jobs.read_json(tmp_path / "model" / "train_state.json")
  assert state["global_step"] == state["steps_per_epoch"] * state[
      "epochs_done"] > 0


def _run_main(tmp_path, *argv):
  run_main(train_main, [f"--model_dir={tmp_path / 'model'}", "--preset=tiny",
                        f"--data_dir={tmp_path / 'data'}", *argv], "train")


@pytest.mark.reliability
@pytest.mark.parametrize("argv, message", [
    (["--override=loss.tau_min=1.0"],
     r"loss.tau_min=1.0 must be < loss.tau_max=1.0"),
    (["--override=loss.tau_min=0.5", "--override=loss.tau_max=0.1"],
     r"loss.tau_min=0.5 must be < loss.tau_max=0.1"),
    (["--override=train.batch_size=1"],
     "train.batch_size=1: in-batch negatives need a batch of at least 2"),
    (["--override=loss.negatives=random_one", "--override=train.batch_size=1"],
     "in-batch negatives need a batch of at least 2"),
    (["--override=data.non_finite_policy=ignore"],
     "data.non_finite_policy='ignore' is not valid"),
    (["--strategy=mirrored", "--devices=/gpu:0"],
     r"--devices \['/gpu:0'\] not found"),
    (["--strategy=mirrored", "--num_cpu_devices=-1"],
     "--num_cpu_devices=-1 must be >= 1"),
    (["--devices=/cpu:0"], "--devices is only for --strategy=mirrored"),
    (["--strategy=parameter_server", "--in_process_cluster=0,1"],
     "an in-process cluster needs >= 1 worker and >= 1 ps"),
])
def test_contradictory_settings_are_refused_before_training(tmp_path, argv,
                                                            message,
                                                            monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match=message):
    _run_main(tmp_path, *argv)
  assert not os.path.exists(tmp_path / "model")
  assert not os.path.exists(tmp_path / "data")
