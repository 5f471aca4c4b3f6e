"""Equal-budget hyper-parameter sweep, selected on the validation split only.

  python -m pipelines.sweep --preset=bench --method=adaftr --budget=8 \
      --output_dir=DIR [--seed=0] [--override=key=value ...]

Trial 1 is the method as defined, the others are seeded draws from its
search space (adaftr_tf/experiments/tuning.py SWEEP_SPACES); pipelines/benchmarks/
sweep.py runs them. Writes DIR/sweep.json (every trial, the winner) and
DIR/sweep.md (the trials, best first), and prints the winner as `--override`
flags, ready for `experiments.TUNED`.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "bench", "Config preset the trials start from.")
cli.define_string("method", "adaftr", "A method of adaftr_tf/experiments/.")
cli.define_integer("budget", 8, "Trials for the method.")
cli.define_integer("seed", 0, "Seed of the random search.")
cli.define_string("output_dir", None, "Where sweep.json goes.")
cli.define_string("data_dir", None, "Data directory (default: per config).")
cli.define_multi_string("override", [], "Config override key=value (all trials).")


def main(argv):
  cli.begin_job(argv, required=("output_dir",))
  if FLAGS.budget < 1:
    raise app.UsageError("--budget must be >= 1")
  from adaftr_tf import experiments
  from pipelines.benchmarks import sweep  # heavy imports after the flags
  experiments.get_method(FLAGS.method)   # ConfigError lists the valid ones
  base = cli.config_from_flags(FLAGS.preset, FLAGS.override)
  result = sweep.run_sweep(FLAGS.method, base, FLAGS.budget, FLAGS.seed,
                           FLAGS.output_dir, FLAGS.data_dir,
                           log=lambda m: print(m, flush=True),
                           preset=FLAGS.preset)
  print("winner (validation): " + (" ".join(
      f"--override={o}" for o in result["winner"]["overrides"])
      or "the method as defined (no overrides)"))


def run():
  """Console script `adaftr-sweep`."""
  cli.run(main)


if __name__ == "__main__":
  run()
