"""Quality benchmark: methods x seeds on identical splits, selected on validation.

  python -m pipelines.benchmark_quality --preset=bench --seeds=3 --output_dir=DIR
      [--methods=adaftr,mmoe,@ladder_esmm,...] [--override=key=value ...]
      [--notuned] [--reference=METHOD] [--baseline_dir=DIR]

Each method (adaftr_tf/experiments/) is the preset, then its sweep winner
(`experiments.TUNED`, chosen on validation by pipelines.sweep), then its
definition. Writes into DIR (pipelines/benchmarks/quality.py):
  results.json   every run's test report and the per-method mean/std
  results.md     the headline table (AUCs, CTCVR log loss, relatedness),
                 the paired differences of each method with a registered
                 baseline among the runs (same seeds, 95% t intervals, share
                 of the oracle's CVR gain), then every metric (mean ± std)
  metrics.png    AUC bars with error bars
  tau.png        for AdaFTR runs: distribution of tau and tau vs planted r
  runs/METHOD-seedN/run.json (+ tau.npz)  each finished run, written as it
                 ends; the same command resumes after an interruption
"""

from __future__ import annotations

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "bench", "Config preset the methods start from.")
cli.define_integer("seeds", 3, "Seeds per method.")
cli.define_string("output_dir", None, "Where results go.")
cli.define_string("methods", "", "Comma-separated methods of the registry, "
                  "@GROUP for a group of them (default: @core).")
cli.define_string("data_dir", None, "Data directory (default: per config).")
cli.define_multi_string("override", [], "Config override key=value (all runs).")
cli.define_string("reference", None, "Also pair every method with this one "
                  "(e.g. single_task), beside each method's registered "
                  "baseline.")
cli.define_string("baseline_dir", None, "Also pair every run with the run of "
                  "the same method and seed in this benchmark output folder "
                  "(e.g. the same benchmark without an --override).")
cli.define_bool("tuned", True, "Start each method from its sweep winner "
                "(experiments.TUNED); --notuned runs the untuned methods.")


def main(argv):
  cli.begin_job(argv, required=("output_dir",))
  if FLAGS.seeds < 1:
    raise app.UsageError("--seeds must be >= 1")
  from pipelines.benchmarks import quality  # heavy imports after the flags
  from pipelines.benchmarks import quality_plan
  methods = quality_plan.select_methods(FLAGS.methods)
  base = cli.config_from_flags(FLAGS.preset, FLAGS.override)
  try:
    plan = quality_plan.plan_runs(base, methods, FLAGS.seeds,
                                  FLAGS.output_dir, tuned=FLAGS.tuned)
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  if FLAGS.baseline_dir is not None:
    try:
      quality.read_runs(FLAGS.baseline_dir)
    except ValueError as err:
      raise app.UsageError(str(err)) from None
  if FLAGS.reference is not None and FLAGS.reference not in methods:
    raise app.UsageError(f"--reference={FLAGS.reference} is not among the "
                         f"benchmarked methods {methods}")
  settings = {"preset": FLAGS.preset, "seeds": FLAGS.seeds,
              "reference": FLAGS.reference,
              "baseline_dir": FLAGS.baseline_dir,
              "tuned": FLAGS.tuned, "overrides": FLAGS.override,
              "command": " ".join(["python -m pipelines.benchmark_quality"]
                                  + sys.argv[1:])}
  try:
    table = quality.run_benchmark(plan, FLAGS.output_dir, FLAGS.data_dir,
                                  settings, log=lambda m: print(m, flush=True))
  except quality.MixedOutputError as err:
    raise app.UsageError(str(err)) from None
  print("\n" + table)
  print(f"\nwrote {FLAGS.output_dir}/results.json, results.md, metrics.png "
        "(and tau.png for AdaFTR runs)")


def run():
  """Console script `adaftr-benchmark-quality`."""
  cli.run(main)


if __name__ == "__main__":
  run()
