"""Speed benchmark: input pipeline, real training path, reference loop, scale.

  python -m pipelines.benchmark_speed --preset=demo --output=speed.json \
      --override=train.batch_size=2048 [--steps=20 --warmup=20] \
      [--vocab_rows=10000,1000000,10000000] [--variants=all] \
      [--prototypes=keras_auc,unfused_info_nce,uncompiled_info_nce,no_metrics] \
      [--paired=all] [--rows=input/rows,input/blocks,real/adaftr,...]
      [--per_core=1000000,5000000]

Measures in one run, on this machine (rows: pipelines/benchmarks/speed/plan.py):
  input       TFRecord files -> parsed (features, labels) batches, no model,
              for each record layout (input/rows: one tf.train.Example per
              row; input/blocks: row blocks);
  real        files -> make_dataset -> compiled model -> Keras fit, for AdaFTR
              and for the same backbone without the contrastive loss, on the
              config's data.layout (row blocks by default), and AdaFTR on the
              other layout (real_rows/adaftr);
  reference   the same models' step on pre-parsed in-memory batches in a
              minimal tf.function loop (what TensorFlow does for this
              architecture on this machine);
  variants    real AdaFTR with steps_per_execution=1, XLA, Adagrad, LazyAdam;
  prototypes  real AdaFTR with a measurement patch (pipelines/benchmarks/speed/
              prototypes.py: the replaced Keras AUC, the unfused or
              uncompiled InfoNCE, no metrics, or the experts as batched
              einsums or one wide first-layer matmul);
  scale       real AdaFTR with embedding tables of --vocab_rows rows in total
              (vocabulary per field = rows / categorical fields), per optimizer;
  paired      (--paired) reference steps of AdaFTR and of config changes or
              prototypes, timed in interleaved rounds in one process: the
              steadiest ratios on a machine shared with other jobs;
and the peak resident memory of each: every row runs in its own process
(`--isolation=subprocess`, the default); core rows run at least
`--memory_repeats` times and report their runs' median peak. Throughput is examples/s over
`--steps` timed steps after `--warmup` untimed ones (tracing, shuffle-buffer
fill); `fit` rows round both up to whole `steps_per_execution` groups.

`--rows` limits the core rows (input/*, real*, reference/*) to those named.

Synthetic data with the preset's generator config (`--data_rows` training
rows, in both layouts; the files are re-read with repeat) is written under
`--data_dir`
(kept and reused) or a temporary folder (deleted). Prints the table, the
targets (met or not) and writes every figure plus `ratio_real_to_reference`,
`ratio_adaftr_to_no_cl` and `ratio_input_to_training` to `--output`, and
per record layout (`layouts`): the input's decode rate (examples per
CPU-second), input / AdaFTR training step per CPU-second, the real path /
the reference loop and the input's peak memory, with issue 15's targets
(`layout_targets`) and, for `--per_core` step rates (examples/s of one
accelerator), the host cores it needs to decode its input (`per_core`: step
rate / decode examples per CPU-second). Exits
with status 1 if a row failed (the JSON names the error).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
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
cli.define_string("rows", "all", "Comma list of the core rows to run (keys "
                  "of plan.core_rows, e.g. input/rows,input/blocks,"
                  "real/adaftr,real_rows/adaftr,reference/adaftr), 'all' or "
                  "'' (none).")
cli.define_string("per_core", "", "Comma list of accelerator step rates "
                  "(examples/s): prints the host cores one accelerator "
                  "needs at each to decode its input, per record layout "
                  "(step rate / the input row's examples per CPU-s).")
cli.define_integer("repeats", 1, "Runs of each core row (interleaved rounds; "
                   "the fastest counts): filters other jobs' load.")
cli.define_integer("memory_repeats", 3, "Runs of each core row at least "
                   "(interleaved rounds) whose peak RSS figure is the median: "
                   "peaks move by +-30 MiB between identical runs.")

def _settings(config) -> plan_lib.Settings:
  """What the flags chose (ValueError names a bad flag value)."""
  from adaftr_tf import choices
  from pipelines.benchmarks.speed import prototypes as prototypes_lib
  return plan_lib.Settings(
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
          FLAGS.scale_optimizers, choices.options(choices.Optimizer),
          "scale_optimizers")),
      paired=tuple(plan_lib.parse_names(FLAGS.paired, plan_lib.PAIRED,
                                        "paired")),
      paired_rounds=FLAGS.paired_rounds, paired_steps=FLAGS.paired_steps,
      layout=config.data.layout)


def main(argv):
  cli.begin_job(argv, required=("output",))
  import tensorflow as tf  # heavy imports after the flags
  from pipelines.benchmarks.speed import harness
  config = cli.config_from_flags(FLAGS.preset, FLAGS.override)
  try:   # flag values: one-line usage errors before any work
    vocab_rows = plan_lib.parse_int_list(FLAGS.vocab_rows, "vocab_rows")
    step_rates = plan_lib.parse_int_list(FLAGS.per_core, "per_core")
    settings = _settings(config)
    core_keys = [row.key for row in plan_lib.select(plan_lib.core_rows(
        settings, dict.fromkeys(plan_lib.LAYOUT_ROWS, "")), FLAGS.rows)]
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  for name in ("steps", "warmup", "input_steps", "reference_batches", "repeats",
               "memory_repeats",
               "data_rows", "scale_data_rows", "scale_steps", "scale_warmup",
               "scale_steps_per_execution", "paired_rounds", "paired_steps"):
    if getattr(FLAGS, name) < 1:
      raise app.UsageError(f"--{name} must be >= 1")
  log = lambda text: print(text, flush=True)
  info = harness.machine()
  root = FLAGS.data_dir or tempfile.mkdtemp(prefix="speed-data-")
  workdir = tempfile.mkdtemp(prefix="speed-rows-")
  started = time.time()
  try:
    data_dirs, scale_dirs = harness.prepare_data(
        config, root, FLAGS.data_rows, vocab_rows, FLAGS.scale_data_rows, log)
    rows = ([row for row in plan_lib.core_rows(settings, data_dirs)
             if row.key in core_keys]
            + plan_lib.extra_rows(settings, data_dirs[settings.layout])
            + plan_lib.paired_rows(settings, data_dirs[settings.layout])
            + plan_lib.scale_rows(settings, scale_dirs))
    results = harness.run_rows(rows, FLAGS.isolation, workdir,
                               FLAGS.row_timeout, log, repeats=FLAGS.repeats,
                               memory_repeats=FLAGS.memory_repeats)
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
      "settings": {**dataclasses.asdict(settings), "repeats": FLAGS.repeats,
                   "memory_repeats": FLAGS.memory_repeats},
      "config": {"preset": FLAGS.preset, "batch_size": t.batch_size,
                 "steps_per_execution": t.steps_per_execution,
                 "optimizer": t.optimizer,
                 "jit_compile": config.runtime.jit_compile,
                 "categorical_fields": config.data.synthetic.num_categorical,
                 "numerical_fields": config.data.synthetic.num_numerical,
                 "data_rows": FLAGS.data_rows,
                 "scale_data_rows": FLAGS.scale_data_rows},
      "seconds": time.time() - started, "rows": results}
  result.update(report.summarise(results, settings.layout, step_rates))
  output_dir = os.path.dirname(FLAGS.output)
  if output_dir:
    tf.io.gfile.makedirs(output_dir)
  with tf.io.gfile.GFile(FLAGS.output, "w") as f:
    json.dump(result, f, indent=1)
  print("\n" + report.markdown(result) + f"\n\nwritten to {FLAGS.output} "
        f"({result['seconds']:.0f}s)", flush=True)
  failed = [k for k, r in results.items() if r["error"]]
  if failed:
    print(f"failed rows: {failed}", file=sys.stderr)
    sys.exit(1)


def run():
  """Console script `adaftr-benchmark-speed`."""
  cli.run(main)


if __name__ == "__main__":
  run()
