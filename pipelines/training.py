"""The training job as a function: data -> fit -> best checkpoint -> reports.

`train(config, model_dir, data_dir)` is what `python -m pipelines.train` and
`make demo` run. Layout of a model directory:

  model_dir/config.json          the final, validated config of the run
  model_dir/schema.json          the feature schema the model was built for
  model_dir/checkpoints/         one weights checkpoint per epoch
  model_dir/best/                weights of the best epoch (validation split)
  model_dir/tensorboard/         TensorBoard logs (losses, AUCs, tau histogram)
  model_dir/history.json         per-epoch metrics from Keras `fit`
  model_dir/valid_metrics.json   full report of the best weights on valid
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

import adaftr_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import tensorflow as tf
import tf_keras

from adaftr_tf import evaluation
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.config import Config
from pipelines import input as data_input
from pipelines import synthetic

CONFIG_FILE = "config.json"
BEST_WEIGHTS = os.path.join("best", "weights")
SYNTHETIC_MARKER = "synthetic.json"
DATA_REPORT = "data_report.json"  # converters' report: {"splits": {split: {"rows": n}}}


def default_data_dir(config: Config) -> str:
  """`data/synthetic-<hash of the synthetic config>` under the working dir."""
  text = json.dumps(config.to_dict()["data"]["synthetic"], sort_keys=True)
  return os.path.join("data", "synthetic-" + hashlib.sha1(text.encode()).hexdigest()[:10])


def resolve_data(config: Config, data_dir: str | None,
                 log: Callable[[str], None] = print) -> tuple[F.FeatureSchema, str]:
  """Returns (schema, data_dir), generating synthetic data when missing.

  A data_dir that holds converted data (schema.json without synthetic.json)
  decides the features whatever the preset.
  """
  if data_dir is None:
    if config.data.source == "files":
      raise ValueError("data.source=files needs --data_dir pointing at "
                       "converted data (a folder with schema.json)")
    data_dir = default_data_dir(config)
  has_schema = tf.io.gfile.exists(os.path.join(data_dir, F.SCHEMA_FILE))
  is_synthetic = tf.io.gfile.exists(os.path.join(data_dir, SYNTHETIC_MARKER))
  if has_schema and not is_synthetic:
    return F.FeatureSchema.load(data_dir), data_dir
  if config.data.source == "files":
    raise FileNotFoundError(f"--data_dir {data_dir} holds no converted data "
                            f"({F.SCHEMA_FILE} missing)")
  return synthetic.ensure_synthetic_dataset(config.data.synthetic, data_dir,
                                            log=log), data_dir


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


class BestEpoch(tf_keras.callbacks.Callback):
  """Keeps the weights of the best epoch on a validation metric."""

  def __init__(self, monitor: str, path: str, patience: int = 0):
    super().__init__()
    self.monitor, self.path, self.patience = monitor, path, patience
    self.mode_max = not monitor.endswith("loss")
    self.best, self.best_epoch, self._wait = None, None, 0

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      raise ValueError(f"checkpoint metric {self.monitor!r} missing from the "
                       f"epoch logs; have {sorted(logs or {})}")
    better = self.best is None or (value > self.best if self.mode_max
                                   else value < self.best)
    if better and np.isfinite(value):
      self.best, self.best_epoch, self._wait = float(value), epoch + 1, 0
      self.model.save_weights(self.path)
    else:
      self._wait += 1
      if self.patience and self._wait >= self.patience:
        self.model.stop_training = True


def split_rows(data_dir: str, split: str, log: Callable[[str], None] = print) -> int:
  """Rows in a split, from the data's metadata (counted when it has none)."""
  for name in (SYNTHETIC_MARKER, DATA_REPORT):
    path = os.path.join(data_dir, name)
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        rows = json.load(f).get("splits", {}).get(split, {}).get("rows")
      if rows is not None:
        return int(rows)
  log(f"counting the {split} records of {data_dir} (no row count stored)")
  files = data_input.records.list_shards(data_dir, split)
  return int(tf.data.TFRecordDataset(files).reduce(
      tf.constant(0, tf.int64), lambda n, _: n + 1))


def datasets(config: Config, schema: F.FeatureSchema, data_dir: str):
  """(train, valid) datasets of `(features, labels)` batches."""
  t = config.train
  train = data_input.make_dataset(
      data_dir, "train", schema, t.batch_size, training=True,
      shuffle_buffer=config.data.shuffle_buffer, seed=t.seed, repeat=True)
  valid = data_input.make_dataset(data_dir, "valid", schema,
                                  t.eval_batch_size, training=False)
  return train, valid


def train(config: Config, model_dir: str, data_dir: str | None = None,
          verbose: int = 1, log: Callable[[str], None] = print) -> dict:
  """Trains, keeps the best epoch and returns its validation report."""
  config.validate()
  schema, data_dir = resolve_data(config, data_dir, log=log)
  tf.io.gfile.makedirs(model_dir)
  with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE), "w") as f:
    f.write(config.to_json())
  schema.save(model_dir)
  tf_keras.utils.set_random_seed(config.train.seed)
  train_ds, valid_ds = datasets(config, schema, data_dir)
  model = models.compile_model(models.build_model(config, schema), config)
  sample_features = next(iter(valid_ds))[0]
  best = BestEpoch(config.train.checkpoint_metric,
                   os.path.join(model_dir, BEST_WEIGHTS),
                   config.train.early_stopping_patience)
  log_dir = os.path.join(model_dir, "tensorboard")
  callbacks = [
      tf_keras.callbacks.ModelCheckpoint(
          os.path.join(model_dir, "checkpoints", "epoch-{epoch:03d}"),
          save_weights_only=True),
      tf_keras.callbacks.TensorBoard(log_dir=log_dir),
      TauHistogram(log_dir, sample_features),
      best,
  ]
  log(f"training {config.model.name} on {data_dir}: "
      f"{len(schema.categorical)} categorical + {len(schema.numerical)} "
      f"numerical fields, batch {config.train.batch_size}")
  t = config.train
  steps = t.steps_per_epoch or split_rows(data_dir, "train", log) // t.batch_size
  if steps < 1:
    raise ValueError(f"the train split of {data_dir} has fewer rows than one "
                     f"batch (train.batch_size={t.batch_size})")
  validation_steps = -(-split_rows(data_dir, "valid", log) // t.eval_batch_size)
  history = model.fit(train_ds, validation_data=valid_ds, epochs=t.epochs,
                      steps_per_epoch=steps, validation_steps=validation_steps,
                      callbacks=callbacks, verbose=verbose)
  model.load_weights(os.path.join(model_dir, BEST_WEIGHTS)).expect_partial()
  valid_report = evaluation.evaluate(model, data_input.make_dataset(
      data_dir, "valid", schema, config.train.eval_batch_size, training=False,
      with_oracle=_has_oracle(data_dir)))
  valid_report["best_epoch"] = best.best_epoch
  _write_json(os.path.join(model_dir, "history.json"),
              {k: [float(v) for v in vals] for k, vals in history.history.items()})
  _write_json(os.path.join(model_dir, "valid_metrics.json"), valid_report)
  return {"model": model, "schema": schema, "data_dir": data_dir,
          "valid": valid_report}


def _has_oracle(data_dir: str) -> bool:
  return tf.io.gfile.exists(os.path.join(data_dir, SYNTHETIC_MARKER))


def _write_json(path: str, payload) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(payload, f, indent=1, sort_keys=True)


def load_trained(model_dir: str):
  """Rebuilds a trained model from its directory: (model, config, schema)."""
  config_path = os.path.join(model_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(config_path):
    raise FileNotFoundError(f"no {CONFIG_FILE} in model dir {model_dir}: train "
                            "with python -m pipelines.train first")
  with tf.io.gfile.GFile(config_path) as f:
    config = Config.from_json(f.read())
  schema = F.FeatureSchema.load(model_dir)
  model = models.build_model(config, schema)
  model(_dummy_features(schema), training=False)  # create the variables
  weights = os.path.join(model_dir, BEST_WEIGHTS)
  if not tf.io.gfile.exists(weights + ".index"):
    raise FileNotFoundError(f"no trained weights at {weights}")
  model.load_weights(weights).expect_partial()
  return model, config, schema


def _dummy_features(schema: F.FeatureSchema):
  features = {f.name: tf.constant([f.default], tf.int64) for f in schema.categorical}
  features.update({f.name: tf.constant([f.default], tf.float32)
                   for f in schema.numerical})
  return features
