"""The training job as a function: data -> fit -> best checkpoint -> reports.

`train(config, model_dir, data_dir)` is what `python -m pipelines.train` and
`make demo` run, under any tf.distribute strategy (distribute.py), resuming
from its step checkpoints when restarted (resume.py). What it writes into
the model directory: model_dir.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from typing import Callable, Sequence

import adaftr_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf
import tf_keras

from adaftr_tf import calibration as calibration_lib
from adaftr_tf import evaluation
from adaftr_tf import optimizers
from adaftr_tf.config import Config
from pipelines.data import datadir
from pipelines.data import layout as data_layout
from pipelines.data import reader
from pipelines.data import records
from pipelines.training import callbacks as cb
from pipelines.training import distribute
from pipelines.training import fit_loop
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import reliability_plot
from pipelines.training import resume
from pipelines.training import teacher

# Settings a restarted run may change without invalidating its checkpoints.
RESUMABLE_CHANGES = ("runtime.strategy", "train.epochs",
                     "train.checkpoint_every_steps",
                     "train.early_stopping_patience")


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

  A key the stored config lacks takes its default (a field added after the
  run started, whose default keeps the old behaviour).

  Raises:
    ValueError: naming the settings that differ from the stored config.
  """
  path = os.path.join(model_dir, model_dir_lib.CONFIG_FILE)
  state = os.path.join(model_dir, resume.STEPS_DIR, "checkpoint")
  if not (tf.io.gfile.exists(path) and tf.io.gfile.exists(state)):
    return
  with tf.io.gfile.GFile(path) as f:
    stored_tree = json.loads(f.read())
  saved = Config.from_saved(stored_tree)   # None: compared as stored
  stored = _flat(json.loads(saved.to_json()) if saved else stored_tree)
  wanted = _flat(json.loads(config.to_json()))
  diff = [f"{k}: stored {stored.get(k)!r}, now {wanted.get(k)!r}"
          for k in sorted(set(stored) | set(wanted))
          if stored.get(k) != wanted.get(k) and k not in RESUMABLE_CHANGES]
  if diff:
    raise ValueError(f"{model_dir} holds step checkpoints of a run with "
                     f"another config ({'; '.join(diff[:6])}); resume it with "
                     "the same config, or train into a fresh --model_dir")


@contextlib.contextmanager
def precision(policy: str):
  """Sets the Keras dtype policy for the models built inside."""
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(policy)
  try:
    yield
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)


def train(config: Config, model_dir: str, data_dir: str | None = None,
          verbose: int = 1, log: Callable[[str], None] = print,
          strategy: tf.distribute.Strategy | None = None,
          extra_callbacks: Sequence[tf_keras.callbacks.Callback] = ()) -> dict:
  """Trains (resuming from step checkpoints), keeps the best epoch, reports.

  Args:
    config: the run's config; `runtime.strategy` is created unless
      `strategy` is given (create strategies before other TensorFlow work).
    model_dir: the run's directory (shared by every worker of a cluster).
    data_dir: converted data, or where synthetic data is generated.
    verbose: Keras fit verbosity.
    log: progress messages.
    strategy: an existing strategy (its kind overrides `runtime.strategy`).
    extra_callbacks: Keras callbacks run after the job's own (e.g. a fault
      injector in tests).

  Returns:
    {"model": the best weights in a single-device float32 model, "schema",
     "data_dir", "valid": the validation report (None on non-chief workers),
     "calibration": the calibrators fitted on valid (`calibration.json`),
     "global_step", "layout"}.
  """
  config.validate()
  t, r = config.train, config.runtime
  if strategy is None:
    strategy = distribute.make_strategy(
        r.strategy, ps_min_shard_bytes=r.ps_min_shard_bytes)
  config = dataclasses.replace(config, runtime=dataclasses.replace(
      r, strategy=distribute.strategy_name(strategy))).validate()
  check_resumable(config, model_dir)
  chief = distribute.is_chief(strategy)
  if chief:
    ensure_writable(model_dir)
  schema, data_dir = datadir.resolve(config, data_dir, log=log,
                                     wait_for_chief=not chief)
  if config.needs_oracle and not datadir.has_oracle(data_dir):
    raise ValueError(f"loss.tau_source={config.loss.tau_source} reads the "
                     f"planted relatedness, which only synthetic data has; "
                     f"{data_dir} is converted data: use loss.tau_source="
                     "network")
  teacher.check(config, schema)
  layout = distribute.layout(strategy, t.batch_size, t.eval_batch_size)
  distribute.check_negatives(layout, config)
  distribute.check_shards(layout, data_dir, ("train", "valid"))
  records.check_manifest(data_dir, ("train", "valid"))
  steps = (t.steps_per_epoch
           or datadir.split_rows(data_dir, "train", log) // t.batch_size)
  if steps < 1:
    raise ValueError(f"the train split of {data_dir} has fewer rows than one "
                     f"batch (train.batch_size={t.batch_size})")
  out_dir = model_dir if chief else distribute.scratch_dir(strategy)
  if chief:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, model_dir_lib.CONFIG_FILE),
                           "w") as f:
      f.write(config.to_json())
    schema.save(model_dir)
  role = "chief" if chief else f"not chief, writes only to {out_dir}"
  log(f"training {config.model.name} on {data_dir} as "
      f"{distribute.task_name(strategy)} ({role}): {len(schema.categorical)} "
      f"categorical + {len(schema.numerical)} numerical fields, "
      f"{data_layout.load(data_dir).describe()}")
  log(layout.describe() + f"; {steps} steps per epoch")
  if config.data.service:
    log(f"training input read by the tf.data service at {config.data.service}"
        " (every row once per pass, in the workers' order)")
  warning = optimizers.dense_table_warning(t.optimizer, {
      f.name: f.num_embeddings for f in schema.categorical})
  if warning:
    log(warning)
  plan = fit_loop.Plan(
      config, schema, data_dir, model_dir, out_dir, chief, layout, steps,
      -(-datadir.split_rows(data_dir, "valid", log) // t.eval_batch_size))
  try:
    with precision(r.mixed_precision):
      fitted = fit_loop.fit(plan, strategy, verbose, log, extra_callbacks)
    return _finish(plan, fitted, log)
  except tf.errors.DataLossError as err:  # its message names no file
    raise records.corrupt_shard_error(data_dir, err) from err
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
    weights = os.path.join(plan.model_dir, model_dir_lib.BEST_WEIGHTS)
  model = model_dir_lib.restore_model(plan.config, plan.schema, weights)
  step = fitted.progress.step
  result = {"model": model, "schema": plan.schema, "data_dir": plan.data_dir,
            "valid": None, "calibration": None, "global_step": step,
            "layout": dataclasses.asdict(plan.layout)}
  if not plan.chief:
    log(f"done at global step {step}; the chief writes the reports")
    return result
  fields = evaluation.report_fields(model, plan.config.data.group_field)
  collected = evaluation.collect(model, reader.make_dataset(
      plan.data_dir, "valid", plan.schema, plan.config.train.eval_batch_size,
      training=False, with_oracle=datadir.has_oracle(plan.data_dir),
      with_keys=True), fields)
  valid_report = evaluation.report(collected, evaluation.tau_bounds(model),
                                   model.objective, *fields)
  valid_report["best_epoch"] = fitted.best_epoch
  calibration = calibration_lib.fit(
      collected, plan.config.train.calibration, model.objective)
  model_dir_lib.write_calibration(plan.model_dir, calibration)
  if calibration.curves:   # fitted on these rows: a consistency check
    valid_report["calibrated"] = evaluation.report(
        calibration_lib.calibrate_collected(collected, calibration),
        evaluation.tau_bounds(model), model.objective, *fields)
  history = fitted.progress.history
  join = lambda name: os.path.join(plan.model_dir, name)
  model_dir_lib.write_json(join(model_dir_lib.HISTORY_FILE), history)
  model_dir_lib.write_json(join(model_dir_lib.VALID_METRICS), valid_report)
  reliability_plot.draw({"valid": valid_report, "valid, calibrated":
                         valid_report.get("calibrated")},
                        join(reliability_plot.VALID_FILE))
  model_dir_lib.write_json(join(model_dir_lib.TRAIN_STATE), {
      "global_step": step, "steps_per_epoch": plan.steps,
      "epochs_done": len(history.get("loss", [])),
      "resumed_from_step": fitted.resumed_from,
      **dataclasses.asdict(plan.layout)})
  log(f"done at global step {step}; best epoch {fitted.best_epoch}")
  result["valid"], result["calibration"] = valid_report, calibration
  return result


def collect_split(trained: dict, config: Config, split: str):
  """(collected arrays, (group field, segment field)) of a trained model
  (`train`'s result) over a split of its data (evaluation.collect)."""
  model, data_dir = trained["model"], trained["data_dir"]
  fields = evaluation.report_fields(model, config.data.group_field)
  return evaluation.collect(model, reader.make_dataset(
      data_dir, split, trained["schema"], config.train.eval_batch_size,
      training=False, with_oracle=datadir.has_oracle(data_dir),
      with_keys=True), fields), fields


def split_report(trained: dict, config: Config, split: str = "test",
                 calibrations: dict | None = None):
  """(report, collected arrays) of a trained model (`train`'s result) on a
  split of its data: the model's probabilities, with the report of what the
  export serves (after the fitted calibrators) under `calibrated`, and of
  each other `calibrations` entry (report key -> Calibration) under its key.
  """
  model = trained["model"]
  collected, fields = collect_split(trained, config, split)
  score = lambda arrays: evaluation.report(
      arrays, evaluation.tau_bounds(model), model.objective, *fields)
  report = score(collected)
  calibrations = {"calibrated": trained["calibration"], **(calibrations or {})}
  for key, calibration in calibrations.items():
    report[key] = score(calibration_lib.calibrate_collected(collected,
                                                            calibration))
  return report, collected
