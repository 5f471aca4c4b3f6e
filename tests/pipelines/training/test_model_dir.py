"""Tests of pipelines/training/model_dir.py: loading a trained model directory
(the best weights), and missing or corrupt weights named."""

import os
import shutil

import numpy as np
import pytest

from pipelines.training import model_dir as model_dir_lib


def test_load_trained_restores_the_best_weights(tiny_run):
  model, config, schema = model_dir_lib.load_trained(tiny_run["model_dir"])
  assert config == tiny_run["config"]
  features = schema.default_features()
  np.testing.assert_allclose(model(features)["ctr"],
                             tiny_run["model"](features)["ctr"], rtol=1e-6)


@pytest.fixture
def trained(tiny_run):
  """The shared tiny run's model directory (tests only read it)."""
  return tiny_run["model_dir"]


def _corrupt(prefix):
  for name in os.listdir(os.path.dirname(prefix)):
    if name.startswith(os.path.basename(prefix) + ".data"):
      path = os.path.join(os.path.dirname(prefix), name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)


@pytest.mark.reliability
def test_missing_and_corrupt_best_weights_are_named(trained, tmp_path):
  copy = str(tmp_path / "model")
  shutil.copytree(trained, copy)
  weights = os.path.join(copy, model_dir_lib.BEST_WEIGHTS)
  _corrupt(weights)
  with pytest.raises(ValueError, match=f"weights checkpoint {weights} cannot "
                     "be read"):
    model_dir_lib.load_trained(copy)
  for name in os.listdir(os.path.dirname(weights)):
    os.remove(os.path.join(os.path.dirname(weights), name))
  with pytest.raises(FileNotFoundError, match=f"no trained weights at "
                     f"{weights}"):
    model_dir_lib.load_trained(copy)
  with pytest.raises(FileNotFoundError, match="no config.json in model dir"):
    model_dir_lib.load_trained(str(tmp_path / "nowhere"))
  model_dir_lib.load_trained(trained)  # the original is untouched
