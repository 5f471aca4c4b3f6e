"""The training job as a function: data -> fit -> best checkpoint -> reports.

`train(config, model_dir, data_dir)` is what `python -m pipelines.train` and
`make demo` run, under any tf.distribute strategy (pipelines/training/distribute.py),
resuming from its step checkpoints when restarted (pipelines/training/resume.py).
Layout of a model directory (written by the chief only):

  model_dir/config.json          the final, validated config of the run
  model_dir/schema.json          the feature schema the model was built for
  model_dir/steps/               step checkpoints (model, optimizer, progress)
  model_dir/checkpoints/         one weights checkpoint per epoch
  model_dir/best/                weights of the best epoch (validation split)
  model_dir/tensorboard/         TensorBoard logs (losses, AUCs, tau histogram)
  model_dir/history.json         per-epoch metrics from Keras `fit`
  model_dir/train_state.json     global step, epochs, strategy and batch layout
  model_dir/valid_metrics.json   full report of the best weights on valid
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from typing import Callable

import adaftr_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf
import tf_keras

from adaftr_tf import evaluation
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.config import Config
from pipelines.training import callbacks as cb
from pipelines.training import distribute
from pipelines.training import fit_loop
from pipelines.data import reader
from pipelines.training import resume
from pipelines.data import synthetic

CONFIG_FILE = "config.json"
BEST_WEIGHTS = fit_loop.BEST_WEIGHTS
SYNTHETIC_MARKER = "synthetic.json"
DATA_REPORT = "data_report.json"  # converters' report: {"splits": {split: {"rows": n}}}
TRAIN_STATE = "train_state.json"
# Settings a restarted run may change without invalidating its checkpoints.
RESUMABLE_CHANGES = ("train.strategy", "train.epochs",
                     "train.checkpoint_every_steps",
                     "train.early_stopping_patience")
DATA_WAIT_S = 900  # how long a non-chief worker waits for the chief's data

# Kept importable from here (older callers).
TauHistogram, BestEpoch = cb.TauHistogram, cb.BestEpoch


def default_data_dir(config: Config) -> str:
  """`data/synthetic-<hash of the synthetic config>` under the working dir."""
  text = json.dumps(config.to_dict()["data"]["synthetic"], sort_keys=True)
  return os.path.join("data", "synthetic-" + hashlib.sha1(text.encode()).hexdigest()[:10])


def resolve_data(config: Config, data_dir: str | None,
                 log: Callable[[str], None] = print,
                 wait_for_chief: bool = False) -> tuple[F.FeatureSchema, str]:
  """Returns (schema, data_dir), generating synthetic data when missing.

  A data_dir that holds converted data (schema.json without synthetic.json)
  decides the features whatever the preset. With `wait_for_chief` (a
  non-chief worker) missing synthetic data is waited for, not generated.
  """
  if data_dir is None:
    if config.data.source == "files":
      raise ValueError("data.source=files needs --data_dir pointing at "
                       "converted data (a folder with schema.json)")
    data_dir = default_data_dir(config)
  schema_path = os.path.join(data_dir, F.SCHEMA_FILE)
  if wait_for_chief and config.data.source == "synthetic":
    deadline = time.time() + DATA_WAIT_S
    while not tf.io.gfile.exists(schema_path):
      if time.time() > deadline:
        raise TimeoutError(f"waited {DATA_WAIT_S}s for the chief to write the "
                           f"synthetic data into {data_dir}")
      time.sleep(1.0)
  has_schema = tf.io.gfile.exists(schema_path)
  is_synthetic = tf.io.gfile.exists(os.path.join(data_dir, SYNTHETIC_MARKER))
  if has_schema and not is_synthetic:
    return F.FeatureSchema.load(data_dir), data_dir
  if config.data.source == "files":
    raise FileNotFoundError(f"--data_dir {data_dir} holds no converted data "
                            f"({F.SCHEMA_FILE} missing)")
  return synthetic.ensure_synthetic_dataset(config.data.synthetic, data_dir,
                                            log=log), data_dir


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
  files = reader.records.list_shards(data_dir, split)
  return int(tf.data.TFRecordDataset(files).reduce(
      tf.constant(0, tf.int64), lambda n, _: n + 1))


def _flat(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def check_resumable(config: Config, model_dir: str) -> None:
  """A model dir with step checkpoints resumes only under the same config.

  Raises:
    ValueError: naming the settings that differ from the stored config.
  """
  path = os.path.join(model_dir, CONFIG_FILE)
  state = os.path.join(model_dir, resume.STEPS_DIR, "checkpoint")
  if not (tf.io.gfile.exists(path) and tf.io.gfile.exists(state)):
    return
  with tf.io.gfile.GFile(path) as f:
    stored = _flat(json.loads(f.read()))
  wanted = _flat(json.loads(config.to_json()))
  diff = [f"{k}: stored {stored.get(k)!r}, now {wanted.get(k)!r}"
          for k in sorted(set(stored) | set(wanted))
          if stored.get(k) != wanted.get(k) and k not in RESUMABLE_CHANGES]
  if diff:
    raise ValueError(f"{model_dir} holds step checkpoints of a run with "
                     f"another config ({'; '.join(diff[:6])}); resume it with "
                     "the same config, or train into a fresh --model_dir")


@contextlib.contextmanager
def _precision(policy: str):
  """Sets the Keras dtype policy for the models built inside."""
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(policy)
  try:
    yield
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)


def train(config: Config, model_dir: str, data_dir: str | None = None,
          verbose: int = 1, log: Callable[[str], None] = print,
          strategy: tf.distribute.Strategy | None = None) -> dict:
  """Trains (resuming from step checkpoints), keeps the best epoch, reports.

  Args:
    config: the run's config; `train.strategy` is created unless `strategy`
      is given (create strategies before any other TensorFlow work).
    model_dir: the run's directory (shared by every worker of a cluster).
    data_dir: converted data, or where synthetic data is generated.
    verbose: Keras fit verbosity.
    log: progress messages.
    strategy: an existing strategy (its kind overrides `train.strategy`).

  Returns:
    {"model": the best weights in a single-device float32 model, "schema",
     "data_dir", "valid": the validation report (None on non-chief workers),
     "global_step", "layout"}.
  """
  config.validate()
  t = config.train
  if strategy is None:
    strategy = distribute.make_strategy(
        t.strategy, ps_min_shard_bytes=t.ps_min_shard_bytes)
  config = dataclasses.replace(config, train=dataclasses.replace(
      t, strategy=distribute.strategy_name(strategy))).validate()
  check_resumable(config, model_dir)
  chief = distribute.is_chief(strategy)
  if chief:
    ensure_writable(model_dir)
  schema, data_dir = resolve_data(config, data_dir, log=log,
                                  wait_for_chief=not chief)
  layout = distribute.layout(strategy, t.batch_size, t.eval_batch_size)
  distribute.check_negatives(layout, config)
  distribute.check_shards(layout, data_dir, ("train", "valid"))
  reader.records.check_manifest(data_dir, ("train", "valid"))
  steps = (t.steps_per_epoch
           or split_rows(data_dir, "train", log) // t.batch_size)
  if steps < 1:
    raise ValueError(f"the train split of {data_dir} has fewer rows than one "
                     f"batch (train.batch_size={t.batch_size})")
  out_dir = model_dir if chief else distribute.scratch_dir(strategy)
  if chief:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE), "w") as f:
      f.write(config.to_json())
    schema.save(model_dir)
  role = "chief" if chief else f"not chief, writes only to {out_dir}"
  log(f"training {config.model.name} on {data_dir} as "
      f"{distribute.task_name(strategy)} ({role}): {len(schema.categorical)} "
      f"categorical + {len(schema.numerical)} numerical fields")
  log(layout.describe() + f"; {steps} steps per epoch")
  plan = fit_loop.Plan(
      config, schema, data_dir, model_dir, out_dir, chief, layout, steps,
      -(-split_rows(data_dir, "valid", log) // t.eval_batch_size))
  try:
    with _precision(t.mixed_precision):
      fitted = fit_loop.fit(plan, strategy, verbose, log)
    return _finish(plan, fitted, log)
  except tf.errors.DataLossError as err:  # its message names no file
    raise reader.records.corrupt_shard_error(data_dir, err) from err
  finally:
    if not chief:
      shutil.rmtree(out_dir, ignore_errors=True)


def ensure_writable(directory: str) -> None:
  """Checks that `directory` can be created and written, before any work.

  Raises:
    OSError (PermissionError, NotADirectoryError, ...): naming the directory.
  """
  probe = os.path.join(directory, f".write-probe-{os.getpid()}")
  existed = tf.io.gfile.isdir(directory)
  try:
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("ok")
    tf.io.gfile.remove(probe)
    if not existed:  # created again when the run writes its first file
      tf.io.gfile.rmtree(directory)
  except (OSError, tf.errors.OpError) as err:
    raise OSError(
        cb.os_errno(err), f"--model_dir {directory} is not writable: "
        f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}; "
        "choose another directory or fix its permissions") from err


def _finish(plan: fit_loop.Plan, fitted: fit_loop.Fitted, log) -> dict:
  """Best weights into a single-device model; the chief reports on valid.

  Evaluating a plain model (float32, no strategy) gives the numbers the
  exported SavedModel serves, and needs no cluster.
  """
  weights = plan.best_weights
  if not tf.io.gfile.exists(weights + ".index"):  # finished before a restart
    weights = os.path.join(plan.model_dir, BEST_WEIGHTS)
  model = restore_model(plan.config, plan.schema, weights)
  step = fitted.progress.step
  result = {"model": model, "schema": plan.schema, "data_dir": plan.data_dir,
            "valid": None, "global_step": step,
            "layout": dataclasses.asdict(plan.layout)}
  if not plan.chief:
    log(f"done at global step {step}; the chief writes the reports")
    return result
  valid_report = evaluation.evaluate(model, reader.make_dataset(
      plan.data_dir, "valid", plan.schema, plan.config.train.eval_batch_size,
      training=False, with_oracle=_has_oracle(plan.data_dir)))
  valid_report["best_epoch"] = fitted.best_epoch
  history = fitted.progress.history
  _write_json(os.path.join(plan.model_dir, "history.json"), history)
  _write_json(os.path.join(plan.model_dir, "valid_metrics.json"), valid_report)
  _write_json(os.path.join(plan.model_dir, TRAIN_STATE), {
      "global_step": step, "steps_per_epoch": plan.steps,
      "epochs_done": len(history.get("loss", [])),
      "resumed_from_step": fitted.resumed_from,
      **dataclasses.asdict(plan.layout)})
  log(f"done at global step {step}; best epoch {fitted.best_epoch}")
  result["valid"] = valid_report
  return result


def _has_oracle(data_dir: str) -> bool:
  return tf.io.gfile.exists(os.path.join(data_dir, SYNTHETIC_MARKER))


def _write_json(path: str, payload) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(payload, f, indent=1, sort_keys=True)


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
  model(_dummy_features(schema), training=False)  # create the variables
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


def load_trained(model_dir: str):
  """Rebuilds a trained model from its directory: (model, config, schema)."""
  config_path = os.path.join(model_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(config_path):
    raise FileNotFoundError(f"no {CONFIG_FILE} in model dir {model_dir}: train "
                            "with python -m pipelines.train first")
  with tf.io.gfile.GFile(config_path) as f:
    config = Config.from_json(f.read())
  schema = F.FeatureSchema.load(model_dir)
  model = restore_model(config, schema,
                        os.path.join(model_dir, BEST_WEIGHTS))
  return model, config, schema


def _dummy_features(schema: F.FeatureSchema):
  features = {f.name: tf.constant([f.default], tf.int64) for f in schema.categorical}
  features.update({f.name: tf.constant([f.default], tf.float32)
                   for f in schema.numerical})
  return features
