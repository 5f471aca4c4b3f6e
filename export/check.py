"""Check an export base before (or after) TF Serving loads it.

  python -m export.check --export_base=DIR [--version=N] [--model_dir=DIR]
      [--benchmark [--benchmark_iters=200] [--benchmark_json=FILE]]
  python -m export.check --export_base=DIR --rest_example=predict_features

  1. lists the versions (stored validation AUCs, warm-up records);
  2. prints each signature's inputs and outputs with dtypes and shapes (what
     `saved_model_cli show --all` gives) of the chosen version (default latest);
  3. replays every warm-up record through the loaded SavedModel (outputs must
     be finite probabilities, one per record) and, with --model_dir, compares
     them with the training checkpoint's outputs on the same records;
  4. --benchmark: p50/p99 latency per request of 1, 64 and 512 records through
     each signature of the loaded SavedModel, in this process;
  5. --rest_example=SIGNATURE: prints only a REST `:predict` body for that
     signature, built from the version's warm-up records (its own schema).
Exit status 1 when a check fails.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import types_pb2  # noqa: E402

from adaftr_tf import features as F  # noqa: E402
from export import versions  # noqa: E402
from export import requests  # noqa: E402
from export import serving  # noqa: E402
from export import validation  # noqa: E402
from export import verify  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("export_base", None, "Base directory of numbered versions.")
cli.define_string("model_dir", None, "Training run to compare outputs with "
                  "(optional).")
cli.define_integer("version", None, "Version to check (default: the latest).")
cli.define_bool("benchmark", False, "Measure latency per request size.")
cli.define_integer("benchmark_iters", 200, "Timed requests per signature and size.")
cli.define_string("benchmark_sizes", "1,64,512", "Records per request.")
cli.define_string("benchmark_json", None, "Also write the latency rows here.")
cli.define_enum("rest_example", None,
                [serving.SIGNATURE_FEATURES, serving.SIGNATURE_EXAMPLES],
                "Print only a REST :predict body for this signature.")
cli.define_integer("rest_rows", 2, "Records in the REST example.")


def version_lines(export_base: str) -> list[str]:
  """One line per version: stored validation AUCs and warm-up size."""
  lines = []
  for version in versions.versions(export_base):
    path = versions.version_dir(export_base, version)
    stored = versions.read_metrics(path)
    aucs = ("no metrics.json" if stored is None else ", ".join(
        f"{validation.auc_key(t)} {stored['metrics'][validation.auc_key(t)]:.4f}"
        for t in validation.TASKS))
    warmup = versions.extra_path(path, versions.WARMUP_FILE)
    count = (sum(1 for _ in tf.data.TFRecordDataset(warmup))
             if tf.io.gfile.exists(warmup) else 0)
    lines.append(f"version {version}: {aucs}; {count} warm-up records")
  return lines


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


def signature_problems(loaded, schema: F.FeatureSchema) -> list[str]:
  """Missing signatures, inputs or outputs of the documented contract."""
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
    missing = set(F.SERVING_OUTPUTS) - set(fn.structured_outputs)
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


def replay_warmup(loaded, path: str, schema: F.FeatureSchema,
                  model_dir: str | None, out=print) -> tuple[list[str], list]:
  """Replays the version's warm-up file; returns (problems, PredictionLogs)."""
  warmup = versions.extra_path(path, versions.WARMUP_FILE)
  if not tf.io.gfile.exists(warmup):
    return [f"no warm-up file {warmup} (exported without --data_dir?)"], []
  logs = requests.read_warmup(warmup)
  problems, model = [], None
  if model_dir:
    from pipelines.training import train_lib
    model, _, model_schema = train_lib.load_trained(model_dir)
    if model_schema != schema:
      problems.append(f"the schema of {model_dir} differs from the export's")
      model = None
  replay = verify.replay(loaded, logs, model, schema)
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
  problems = signature_problems(loaded, schema)
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


def main(argv):
  cli.begin_job(argv, required=("export_base",))
  if FLAGS.rest_rows < 1 or FLAGS.benchmark_iters < 1:
    raise app.UsageError("--rest_rows and --benchmark_iters must be >= 1")
  if FLAGS.rest_example:
    _, path = versions.resolve_version(FLAGS.export_base, FLAGS.version)
    logs = requests.read_warmup(versions.extra_path(path, versions.WARMUP_FILE))
    examples = warmup_examples(logs)[:FLAGS.rest_rows]
    print(json.dumps(requests.rest_bodies(examples, load_schema(path))
                     [FLAGS.rest_example], indent=1))
    return 0
  try:
    sizes = tuple(int(s) for s in FLAGS.benchmark_sizes.split(","))
  except ValueError as err:
    raise app.UsageError(f"--benchmark_sizes must be comma-separated ints, got "
                         f"{FLAGS.benchmark_sizes!r}") from err
  problems, rows = run_checks(FLAGS.export_base, FLAGS.version, FLAGS.model_dir,
                              sizes if FLAGS.benchmark else None,
                              FLAGS.benchmark_iters)
  if FLAGS.benchmark_json and rows:
    with tf.io.gfile.GFile(FLAGS.benchmark_json, "w") as f:
      json.dump({"rows": rows, "iters": FLAGS.benchmark_iters}, f, indent=1)
  if problems:
    print("check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
    return 1
  print("check passed")
  return 0


if __name__ == "__main__":
  app.run(main)
