"""Training job and its absl entrypoint on the tiny preset."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from adaftr_tf import config as config_lib

from adaftr_tf import overrides

from adaftr_tf import experiments
from pipelines import train as train_main
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import train_lib

FLAGS = flags.FLAGS


def _parse(argv):
  FLAGS.unparse_flags()
  FLAGS(["train"] + argv)


def test_tiny_run_writes_every_artifact(tiny_run):
  model_dir = tiny_run["model_dir"]
  for name in ("config.json", "schema.json", "history.json",
               "valid_metrics.json", "best/weights.index"):
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


def test_tensorboard_has_the_relatedness_diagnostics(tiny_run):
  import tensorflow as tf
  folder = os.path.join(tiny_run["model_dir"], "tensorboard", "tau")
  tags = {}
  for name in os.listdir(folder):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(folder,
                                                                  name)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  for tag in ("tau", "predicted_relatedness", "agreement", "tau_mean",
              "predicted_relatedness_mean", "agreement_mean",
              "spearman_neg_tau_vs_r", "spearman_agreement_vs_r"):
    assert sorted(tags.get(tag, [])) == [0, 1], (tag, sorted(tags))


def test_valid_report_has_metrics_tau_and_oracle(tiny_run):
  valid = tiny_run["valid"]
  for key in ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_logloss", "cvr_logloss",
              "ctcvr_logloss", "ctr_ece", "tau_mean", "tau_p5", "tau_p95",
              "oracle_ctr_auc", "oracle_cvr_auc", "oracle_ctcvr_auc",
              "spearman_neg_tau_vs_r", "best_epoch"):
    assert key in valid, key
  config = tiny_run["config"]
  assert config.loss.tau_min <= valid["tau_p5"] <= valid["tau_p95"] <= config.loss.tau_max
  assert valid["best_epoch"] in (1, 2)
  assert valid["ctr_auc"] > 0.5  # learns something on 2 epochs of 4k rows


def test_load_trained_restores_the_best_weights(tiny_run):
  model, config, schema = model_dir_lib.load_trained(tiny_run["model_dir"])
  assert config == tiny_run["config"]
  features = schema.default_features()
  np.testing.assert_allclose(model(features)["ctr"],
                             tiny_run["model"](features)["ctr"], rtol=1e-6)


def test_train_entrypoint_main_runs_end_to_end(tmp_path, tiny_run, capsys):
  with flagsaver.flagsaver():
    _parse([f"--model_dir={tmp_path / 'model'}", "--preset=tiny",
            f"--data_dir={tiny_run['data_dir']}", "--verbose=0",
            "--override=train.steps_per_epoch=5", "--override=model.name=multitask"])
    train_main.main(["train"])
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


def test_missing_converted_data_is_a_clear_error(tmp_path):
  config = overrides.apply(experiments.get_preset("tiny"),
                                      ["data.source=files"])
  with pytest.raises(FileNotFoundError, match="holds no converted data"):
    train_lib.train(config, str(tmp_path / "model"), str(tmp_path / "missing"),
                   verbose=0)
  with pytest.raises(ValueError, match="needs --data_dir"):
    train_lib.train(config, str(tmp_path / "model"), None, verbose=0)
