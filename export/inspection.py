"""Checks of an export base: versions, signatures, warm-up replay, latency.

What `python -m export.check` runs (`run_checks`), as functions.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from adaftr_tf import calibration as calibration_lib
from adaftr_tf import features as F
from adaftr_tf import objective as objective_lib
from adaftr_tf.config import Config
from export import requests
from export import serving
from export import validation
from export import verify
from export import versions
from pipelines.training import model_dir as model_dir_lib


def version_lines(export_base: str) -> list[str]:
  """One line per version: stored validation AUCs, calibration (predicted /
  observed ± its standard error, served and before calibration) and the
  warm-up size."""
  lines = []
  for version in versions.versions(export_base):
    path = versions.version_dir(export_base, version)
    stored = versions.read_metrics(path)
    warmup = versions.extra_path(path, versions.WARMUP_FILE)
    count = (sum(1 for _ in tf.data.TFRecordDataset(warmup))
             if tf.io.gfile.exists(warmup) else 0)
    if stored is None:
      lines.append(f"version {version}: no metrics.json; {count} warm-up "
                   "records")
      continue
    metrics = stored["metrics"]
    tasks = objective_lib.task_names(metrics)
    aucs = ", ".join(f"{validation.auc_key(t)} "
                     f"{metrics[validation.auc_key(t)]:.4f}" for t in tasks)
    lines.append(f"version {version}: {aucs}; {count} warm-up records")
    lines.extend(calibration_lines(metrics, tasks))
  return lines


def calibration_lines(metrics: dict, tasks) -> list[str]:
  """The stored predicted/observed figures of a version, one line."""
  ratio = lambda m, t: (f"{m[t + '_pred_obs_ratio']:.3f} ± "
                        f"{m.get(t + '_pred_obs_ratio_se', float('nan')):.3f}"
                        if t + "_pred_obs_ratio" in m else "—")
  method = metrics.get("calibration_method", "none")
  raw = metrics.get("uncalibrated")
  cells = [f"{t} {ratio(metrics, t)}"
           + (f" (uncalibrated {ratio(raw, t)})" if raw else "")
           for t in tasks]
  return [f"  predicted/observed on valid, calibration {method}: "
          + ", ".join(cells)]


def _spec_text(spec) -> str:
  dims = ", ".join("-1" if d is None else str(d) for d in spec.shape.as_list())
  return (f"dtype: {types_pb2.DataType.Name(spec.dtype.as_datatype_enum)} "
          f"shape: ({dims})")


def signature_lines(loaded) -> list[str]:
  """Inputs and outputs of every signature, sorted by key (saved_model_cli)."""
  lines = []
  for name in sorted(loaded.signatures):
    fn = loaded.signatures[name]
    lines.append(f"signature_def[{name!r}]:")
    for key, spec in sorted(fn.structured_input_signature[1].items()):
      lines.append(f"  inputs[{key!r}] {_spec_text(spec)}")
    for key, spec in sorted(fn.structured_outputs.items()):
      lines.append(f"  outputs[{key!r}] {_spec_text(spec)}")
  return lines


def signature_problems(loaded, schema: F.FeatureSchema,
                       objective: objective_lib.Objective = (
                           objective_lib.FUNNEL_OBJECTIVE)) -> list[str]:
  """Missing signatures, inputs or outputs of the documented contract (the
  outputs `objective` serves)."""
  found = []
  for name in (serving.SIGNATURE_EXAMPLES, serving.SIGNATURE_FEATURES):
    if name not in loaded.signatures:
      found.append(f"signature {name!r} missing; have {sorted(loaded.signatures)}")
      continue
    fn = loaded.signatures[name]
    expected = ({serving.EXAMPLES_INPUT} if name == serving.SIGNATURE_EXAMPLES
                else set(schema.feature_names))
    if set(fn.structured_input_signature[1]) != expected:
      found.append(f"{name}: inputs {sorted(fn.structured_input_signature[1])}, "
                   f"expected {sorted(expected)}")
    missing = set(objective.serving_outputs) - set(fn.structured_outputs)
    if missing:
      found.append(f"{name}: outputs {sorted(missing)} missing")
  return found


def warmup_examples(logs) -> list[bytes]:
  """The serialized tf.Examples of the single-record serving_default requests."""
  examples = []
  for log in logs:
    signature, inputs = requests.request_inputs(log.predict_log.request)
    values = inputs.get(serving.EXAMPLES_INPUT)
    single = values is not None and values.size == 1
    if signature == serving.SIGNATURE_EXAMPLES and single:
      examples.append(values.reshape(-1)[0])
  if not examples:
    raise ValueError("the warm-up file holds no single-record serving_default "
                     "request to take examples from")
  return examples


def benchmark(loaded, schema: F.FeatureSchema, examples: list[bytes],
              sizes=(1, 64, 512), iters: int = 200, warmup: int = 5) -> list[dict]:
  """Latency per request through each signature of a loaded SavedModel.

  Requests of `size` records cycle through `examples`. Each (signature, size)
  gets `warmup` untimed calls, then `iters` timed ones (wall clock of the call
  and the transfer of its outputs to NumPy).

  Returns:
    Rows {signature, records, p50_ms, p99_ms, mean_ms, records_per_s}.
  """
  rows = []
  for size in sizes:
    batch = [examples[i % len(examples)] for i in range(size)]
    columns = requests.parse_features(batch, schema)
    inputs = {serving.SIGNATURE_EXAMPLES: {serving.EXAMPLES_INPUT: tf.constant(batch)},
              serving.SIGNATURE_FEATURES: {k: tf.constant(v)
                                           for k, v in columns.items()}}
    for signature, args in inputs.items():
      fn = loaded.signatures[signature]
      for _ in range(warmup):
        fn(**args)
      times = []
      for _ in range(iters):
        start = time.perf_counter()
        {k: v.numpy() for k, v in fn(**args).items()}
        times.append(time.perf_counter() - start)
      ms = np.array(times) * 1e3
      rows.append({"signature": signature, "records": size,
                   "p50_ms": float(np.percentile(ms, 50)),
                   "p99_ms": float(np.percentile(ms, 99)),
                   "mean_ms": float(ms.mean()),
                   "records_per_s": float(size / ms.mean() * 1e3)})
  return rows


def table(rows: list[dict]) -> str:
  """A Markdown table of `benchmark` rows."""
  lines = ["| signature | records/request | p50 ms | p99 ms | records/s |",
           "| --- | ---: | ---: | ---: | ---: |"]
  lines += [f"| {r['signature']} | {r['records']} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['records_per_s']:,.0f} |" for r in rows]
  return "\n".join(lines)


def load_schema(saved_model_dir: str) -> F.FeatureSchema:
  with tf.io.gfile.GFile(versions.extra_path(saved_model_dir, F.SCHEMA_FILE)) as f:
    return F.FeatureSchema.from_dict(json.load(f))


def load_calibration(saved_model_dir: str):
  """The calibrators a version serves (None when it serves the raw model)."""
  path = versions.extra_path(saved_model_dir, versions.CALIBRATION_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return calibration_lib.Calibration.from_json(f.read())


def load_objective(saved_model_dir: str,
                   schema: F.FeatureSchema) -> objective_lib.Objective:
  """The objective a version serves, from its stored config and schema
  (the funnel when it stores no config or one this version cannot read)."""
  path = versions.extra_path(saved_model_dir, versions.CONFIG_FILE)
  config = None
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      config = Config.from_saved(json.load(f))
  if config is None:
    return objective_lib.FUNNEL_OBJECTIVE
  return objective_lib.resolve(config.model.objective, schema)


def replay_warmup(loaded, path: str, schema: F.FeatureSchema,
                  model_dir: str | None, out=print) -> tuple[list[str], list]:
  """Replays the version's warm-up file; returns (problems, PredictionLogs)."""
  warmup = versions.extra_path(path, versions.WARMUP_FILE)
  if not tf.io.gfile.exists(warmup):
    return [f"no warm-up file {warmup} (exported without --data_dir?)"], []
  logs = requests.read_warmup(warmup)
  problems, model = [], None
  if model_dir:
    model, _, model_schema = model_dir_lib.load_trained(model_dir)
    if model_schema != schema:
      problems.append(f"the schema of {model_dir} differs from the export's")
      model = None
  replay = verify.replay(loaded, logs, model, schema,
                         calibration=load_calibration(path))
  counts = ", ".join(f"{k}: {v}" for k, v in sorted(replay.per_signature.items()))
  out(f"replayed {replay.records} warm-up records ({counts})")
  if replay.max_abs_diff is not None:
    out(f"max |SavedModel - checkpoint {model_dir}| = {replay.max_abs_diff:.3g} "
        f"(tolerance {verify.TOLERANCE:g})")
  return problems + replay.problems, logs


def run_checks(export_base: str, version: int | None = None,
               model_dir: str | None = None,
               benchmark_sizes: tuple[int, ...] | None = None,
               benchmark_iters: int = 200,
               out=print) -> tuple[list[str], list[dict]]:
  """Steps 1-4 of the module docstring; returns (problems, benchmark rows).

  Args:
    export_base, version, model_dir: as the flags.
    benchmark_sizes: records per request to time; None: no benchmark.
    benchmark_iters: timed requests per signature and size.
    out: where report lines go.
  """
  for line in version_lines(export_base):
    out(line)
  version, path = versions.resolve_version(export_base, version)
  out(f"checking version {version}: {path}")
  loaded = tf.saved_model.load(path)
  schema = load_schema(path)
  for line in signature_lines(loaded):
    out(line)
  problems = signature_problems(loaded, schema, load_objective(path, schema))
  found, logs = replay_warmup(loaded, path, schema, model_dir, out)
  problems += found
  rows = []
  if benchmark_sizes and problems:
    out("benchmark skipped: the checks above failed")
  elif benchmark_sizes:
    rows = benchmark(loaded, schema, warmup_examples(logs), benchmark_sizes,
                     benchmark_iters)
    out(f"latency per request, {benchmark_iters} timed requests each "
        f"({os.cpu_count()} CPUs visible):")
    out(table(rows))
  return problems, rows
