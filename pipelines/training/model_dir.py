"""A model directory: its layout, and the trained model read back from it.

Written by the training job's chief (pipelines/training/train_lib.py):

  config.json          the final, validated config of the run
  schema.json          the feature schema the model was built for
  steps/               step checkpoints (model, optimizer, progress)
  checkpoints/         one weights checkpoint per epoch
  best/weights.*       weights of the best epoch (validation split)
  tensorboard/         TensorBoard logs (losses, AUCs, tau histograms)
  history.json         per-epoch metrics from Keras `fit`
  train_state.json     global step, epochs, strategy and batch layout
  valid_metrics.json   full report of the best weights on valid (with the
                       calibrated probabilities' report under `calibrated`)
  calibration.json     the calibrators fitted on valid (adaftr_tf/calibration.py)
  reliability_valid.png  reliability diagram of valid (raw and calibrated)
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from adaftr_tf import calibration as calibration_lib
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.config import Config

CONFIG_FILE = "config.json"
BEST_WEIGHTS = os.path.join("best", "weights")
EPOCH_WEIGHTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
HISTORY_FILE = "history.json"
TRAIN_STATE = "train_state.json"
VALID_METRICS = "valid_metrics.json"
CALIBRATION = calibration_lib.CALIBRATION_FILE


def write_json(path: str, payload) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(payload, f, indent=1, sort_keys=True)


def read_config(model_dir: str) -> Config:
  """The run's config.json; FileNotFoundError says how to make one."""
  path = os.path.join(model_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"no {CONFIG_FILE} in model dir {model_dir}: "
                            "train with python -m pipelines.train first")
  with tf.io.gfile.GFile(path) as f:
    return Config.from_json(f.read())


def restore_model(config: Config, schema: F.FeatureSchema, weights: str):
  """A single-device model of `config` with the weights checkpoint `weights`.

  Raises:
    FileNotFoundError: no checkpoint at `weights`.
    ValueError: the checkpoint cannot be read (truncated, corrupt, or of
      another model), naming it.
  """
  if not tf.io.gfile.exists(weights + ".index"):
    raise FileNotFoundError(f"no trained weights at {weights}")
  model = models.build_model(config, schema)
  model(schema.default_features(), training=False)  # create the variables
  try:
    model.load_weights(weights).expect_partial()
  except (tf.errors.OpError, ValueError, AssertionError, IndexError,
          KeyError) as err:  # what TensorFlow raises for a damaged file
    raise ValueError(
        f"weights checkpoint {weights} cannot be read ({type(err).__name__}: "
        f"{str(err).splitlines()[0][:300] if str(err) else ''}); it is "
        "corrupt or of another model: retrain, or restore the file from a "
        "copy") from err
  return model


def read_calibration(model_dir: str) -> calibration_lib.Calibration:
  """The calibrators fitted after training (none for a model dir written
  before calibration existed)."""
  path = os.path.join(model_dir, CALIBRATION)
  if not tf.io.gfile.exists(path):
    return calibration_lib.Calibration()
  with tf.io.gfile.GFile(path) as f:
    return calibration_lib.Calibration.from_json(f.read())


def write_calibration(model_dir: str,
                      calibration: calibration_lib.Calibration) -> None:
  with tf.io.gfile.GFile(os.path.join(model_dir, CALIBRATION), "w") as f:
    f.write(calibration.to_json())


def load_trained(model_dir: str):
  """Rebuilds a trained model from its directory: (model, config, schema)."""
  config = read_config(model_dir)
  schema = F.FeatureSchema.load(model_dir)
  model = restore_model(config, schema, os.path.join(model_dir, BEST_WEIGHTS))
  return model, config, schema
