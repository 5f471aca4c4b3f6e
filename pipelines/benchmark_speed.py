"""Speed benchmark: input pipeline, real training path, reference loop, scale.

  python -m pipelines.benchmark_speed --preset=demo --output=speed.json \
      --override=train.batch_size=2048 [--steps=20 --warmup=20] \
      [--vocab_rows=10000,1000000,10000000] [--variants=all] \
      [--prototypes=keras_auc,unfused_info_nce,uncompiled_info_nce,no_metrics] \
      [--paired=all]

Measures in one run, on this machine (rows: pipelines/benchmarks/speed/plan.py):
  input       TFRecord files -> parsed (features, labels) batches, no model;
  real        files -> make_dataset -> compiled model -> Keras fit, for AdaFTR
              and for the same backbone without the contrastive loss;
  reference   the same models' step on pre-parsed in-memory batches in a
              minimal tf.function loop (what TensorFlow does for this
              architecture on this machine);
  variants    real AdaFTR with steps_per_execution=1, XLA, Adagrad, LazyAdam;
  prototypes  real AdaFTR with a measurement patch (pipelines/benchmarks/speed/
              prototypes.py: the replaced Keras AUC, the unfused or
              uncompiled InfoNCE, or no metrics);
  scale       real AdaFTR with embedding tables of --vocab_rows rows in total
              (vocabulary per field = rows / categorical fields), per optimizer;
  paired      (--paired) reference steps of AdaFTR and of config changes or
              prototypes, timed in interleaved rounds in one process: the
              steadiest ratios on a machine shared with other jobs;
and the peak resident memory of each: every row runs in its own process
(`--isolation=subprocess`, the default). Throughput is examples/s over
`--steps` timed steps after `--warmup` untimed ones (tracing, shuffle-buffer
fill); `fit` rows round both up to whole `steps_per_execution` groups.

Synthetic data with the preset's generator config (`--data_rows` training
rows; the files are re-read with repeat) is written under `--data_dir`
(kept and reused) or a temporary folder (deleted). Prints the table, the
targets (met or not) and writes every figure plus `ratio_real_to_reference`,
`ratio_adaftr_to_no_cl` and `ratio_input_to_training` to `--output`. Exits
with status 1 if a row failed (the JSON names the error).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402
from pipelines.benchmarks.speed import plan as plan_lib  # noqa: E402
from pipelines.benchmarks.speed import report  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "demo", "Config preset name.")
cli.define_string("output", None, "JSON file for every figure (required).")
cli.define_multi_string("override", [], "Config override key=value.")
cli.define_integer("steps", 20, "Timed training steps per row.")
cli.define_integer("warmup", 20, "Untimed steps before the timed ones.")
cli.define_integer("input_steps", 60, "Timed batches of the input row.")
cli.define_integer("reference_batches", 8,
                   "Pre-parsed batches the reference loop cycles through.")
cli.define_string("data_dir", None,
                  "Folder for the benchmark's synthetic data (kept and "
                  "reused); default: a temporary folder, deleted at the end.")
cli.define_integer("data_rows", 200_000, "Training rows of the main data.")
cli.define_string("vocab_rows", "10000,1000000,10000000",
                  "Total embedding-table rows of the scale rows ('' = none).")
cli.define_integer("scale_data_rows", 50_000, "Training rows per scale size.")
cli.define_integer("scale_steps", 4, "Timed steps per scale row.")
cli.define_integer("scale_warmup", 2, "Warm-up steps per scale row.")
cli.define_integer("scale_steps_per_execution", 2,
                   "steps_per_execution of the scale rows.")
cli.define_string("scale_optimizers", "adam,lazy_adam,adagrad",
                  "Optimizers of the scale rows (train.optimizer values).")
cli.define_string("variants", "all", "Comma list of plan.VARIANTS, 'all' or "
                  "'' (none).")
cli.define_string("prototypes", "", "Comma list of speed.prototypes "
                  "(measurement patches), 'all' or '' (none).")
cli.define_string("paired", "", "Entries of plan.PAIRED to time against "
                  "AdaFTR's reference step in one process, interleaved "
                  "('all', '' = no paired row).")
cli.define_integer("paired_rounds", 4, "Interleaved rounds of the paired row.")
cli.define_integer("paired_steps", 5, "Steps per entry and round.")
cli.define_enum("isolation", "subprocess", ["subprocess", "in_process"],
                "subprocess: one process per row (separate memory peaks); "
                "in_process: all rows here (peaks reset per row; quick "
                "checks only).")
cli.define_integer("row_timeout", 900, "Seconds a row may take.")
cli.define_integer("repeats", 1, "Runs of each core row (interleaved rounds; "
                   "the fastest counts): filters other jobs' load.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _synthetic_dir(root: str, synthetic) -> str:
  text = json.dumps(dataclasses.asdict(synthetic), sort_keys=True)
  digest = hashlib.sha1(text.encode()).hexdigest()[:10]
  return os.path.join(root, "speed-" + digest)


def prepare_data(config, root, data_rows, vocab_rows, scale_data_rows, log):
  """(main data dir, {total rows: data dir}), generated when missing."""
  from pipelines.data import synthetic
  base = config.data.synthetic
  held_out = min(2048, data_rows)   # valid/test are never read here
  main = dataclasses.replace(base, num_train=data_rows, num_valid=held_out,
                             num_test=held_out)
  wanted = {None: main}
  if vocab_rows and base.num_categorical < 1:
    raise ValueError("--vocab_rows needs categorical fields; the preset's "
                     "data has none (pass --vocab_rows='')")
  for total in vocab_rows:
    # Each field has vocab_size ids plus its OOV row.
    vocab = max(1, total // base.num_categorical - 1)
    wanted[total] = dataclasses.replace(main, vocab_size=vocab,
                                        num_train=scale_data_rows)
  dirs = {}
  for key, synthetic_config in wanted.items():
    path = _synthetic_dir(root, synthetic_config)
    start = time.time()
    synthetic.ensure_synthetic_dataset(synthetic_config, path,
                                       log=lambda _: None)
    log(f"data {'main' if key is None else f'{key} table rows'}: {path} "
        f"({time.time() - start:.0f}s)")
    dirs[key] = path
  return dirs.pop(None), dirs


def _run_subprocess(spec, workdir, timeout):
  spec_path = os.path.join(workdir, "spec.json")
  out_path = os.path.join(workdir, "result.json")
  if os.path.exists(out_path):
    os.remove(out_path)
  with open(spec_path, "w") as f:
    json.dump(spec, f)
  env = {**os.environ, "TF_USE_LEGACY_KERAS": "1",
         "PYTHONPATH": os.pathsep.join(
             p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  proc = subprocess.run(
      [sys.executable, "-m", "pipelines.benchmarks.speed.worker", spec_path, out_path],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
  if proc.returncode != 0 or not os.path.exists(out_path):
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"worker exited with {proc.returncode}: "
                       + " | ".join(tail))
  with open(out_path) as f:
    return json.load(f)


def _run_row(row, isolation, workdir, timeout) -> dict:
  """One measurement of a row: its figures, or {"error": ...}."""
  try:
    if isolation == "subprocess":
      return _run_subprocess(row.spec, workdir, timeout)
    from pipelines.benchmarks.speed import phases
    return phases.run_phase(row.spec)
  except Exception as err:  # pylint: disable=broad-except
    return {"error": f"{type(err).__name__}: {err}"}


def _best(runs: list[dict]) -> dict:
  """The fastest successful run of a row (all runs' speeds kept beside it)."""
  ok = [r for r in runs if not r.get("error")]
  best = dict(max(ok, key=lambda r: r.get("examples_per_s") or 0) if ok
              else runs[-1])
  best.setdefault("error", None)
  best["repeats_examples_per_s"] = [r.get("examples_per_s") for r in runs]
  best["repeats_peak_rss_mb"] = [r.get("peak_rss_mb") for r in runs]
  return best


def run_rows(rows, isolation, workdir, timeout, log, repeats=1):
  """Runs every row in order; a failure is recorded, not raised.

  Core rows run `repeats` times, in interleaved rounds (all core rows, then
  all again), and keep their fastest run: on a shared machine the other
  jobs' load only ever slows a run down.
  """
  schedule = [row for row in rows if row.group == "core"] * (repeats - 1)
  schedule = list(rows) + schedule
  runs: dict[str, list[dict]] = {}
  for index, row in enumerate(schedule):
    start = time.time()
    run = _run_row(row, isolation, workdir, timeout)
    runs.setdefault(row.key, []).append(run)
    speed = run.get("examples_per_s")
    log(f"[{index + 1}/{len(schedule)}] {row.key}: " + (
        run["error"] if run.get("error") else
        (f"{speed:,.0f} examples/s, " if speed else "")
        + f"peak {run['peak_rss_mb']:,.0f} MiB")
        + f" ({time.time() - start:.0f}s)")
  return {row.key: {"group": row.group, "description": row.description,
                    "spec": row.spec, **_best(runs[row.key])}
          for row in rows}


def machine() -> dict:
  """The machine the figures come from (CPU, load, versions)."""
  model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f
               if line.startswith("model name")]
    model = names[0] if names else model
  except OSError:
    pass
  import tensorflow as tf
  return {"cpu_count": os.cpu_count(), "cpu_model": model,
          "platform": platform.platform(), "python": platform.python_version(),
          "tensorflow": tf.__version__,
          "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
          "load_average_start": list(os.getloadavg()),
          "date": datetime.datetime.now().isoformat(timespec="seconds")}


def main(argv):
  cli.begin_job(argv, required=("output",))
  from adaftr_tf import config as config_lib
  from pipelines.benchmarks.speed import prototypes as prototypes_lib
  config = config_lib.apply_overrides(config_lib.get_preset(FLAGS.preset),
                                      FLAGS.override).validate()
  vocab_rows = plan_lib.parse_int_list(FLAGS.vocab_rows, "vocab_rows")
  settings = plan_lib.Settings(
      preset=FLAGS.preset, overrides=tuple(FLAGS.override), steps=FLAGS.steps,
      warmup=FLAGS.warmup, input_steps=FLAGS.input_steps,
      reference_batches=FLAGS.reference_batches,
      steps_per_execution=config.train.steps_per_execution,
      variants=tuple(plan_lib.parse_names(FLAGS.variants, plan_lib.VARIANTS,
                                          "variants")),
      prototypes=tuple(plan_lib.parse_names(
          FLAGS.prototypes, prototypes_lib.PROTOTYPES, "prototypes")),
      scale_steps=FLAGS.scale_steps, scale_warmup=FLAGS.scale_warmup,
      scale_steps_per_execution=FLAGS.scale_steps_per_execution,
      scale_optimizers=tuple(plan_lib.parse_names(
          FLAGS.scale_optimizers, plan_lib.SCALE_OPTIMIZERS,
          "scale_optimizers")),
      paired=tuple(plan_lib.parse_names(FLAGS.paired, plan_lib.PAIRED,
                                        "paired")),
      paired_rounds=FLAGS.paired_rounds, paired_steps=FLAGS.paired_steps)
  for name in ("steps", "warmup", "input_steps", "reference_batches", "repeats",
               "data_rows", "scale_data_rows", "scale_steps", "scale_warmup",
               "scale_steps_per_execution", "paired_rounds", "paired_steps"):
    if getattr(FLAGS, name) < 1:
      raise app.UsageError(f"--{name} must be >= 1")
  log = lambda text: print(text, flush=True)
  info = machine()
  root = FLAGS.data_dir or tempfile.mkdtemp(prefix="speed-data-")
  workdir = tempfile.mkdtemp(prefix="speed-rows-")
  started = time.time()
  try:
    data_dir, scale_dirs = prepare_data(config, root, FLAGS.data_rows,
                                        vocab_rows, FLAGS.scale_data_rows, log)
    rows = (plan_lib.core_rows(settings, data_dir)
            + plan_lib.extra_rows(settings, data_dir)
            + plan_lib.paired_rows(settings, data_dir)
            + plan_lib.scale_rows(settings, scale_dirs))
    results = run_rows(rows, FLAGS.isolation, workdir, FLAGS.row_timeout, log,
                       repeats=FLAGS.repeats)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
    if not FLAGS.data_dir:
      shutil.rmtree(root, ignore_errors=True)
  info["load_average_end"] = list(os.getloadavg())
  t = config.train
  result = {
      "command": " ".join(["python -m pipelines.benchmark_speed"]
                          + sys.argv[1:]),
      "machine": info, "isolation": FLAGS.isolation,
      "settings": {**dataclasses.asdict(settings), "repeats": FLAGS.repeats},
      "config": {"preset": FLAGS.preset, "batch_size": t.batch_size,
                 "steps_per_execution": t.steps_per_execution,
                 "optimizer": t.optimizer, "jit_compile": t.jit_compile,
                 "categorical_fields": config.data.synthetic.num_categorical,
                 "numerical_fields": config.data.synthetic.num_numerical,
                 "data_rows": FLAGS.data_rows,
                 "scale_data_rows": FLAGS.scale_data_rows},
      "seconds": time.time() - started, "rows": results}
  result.update(report.summarise(results))
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  with open(FLAGS.output, "w") as f:
    json.dump(result, f, indent=1)
  print("\n" + report.markdown(result) + f"\n\nwritten to {FLAGS.output} "
        f"({result['seconds']:.0f}s)", flush=True)
  failed = [k for k, r in results.items() if r["error"]]
  if failed:
    print(f"failed rows: {failed}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
