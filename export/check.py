"""Check an export base before (or after) TF Serving loads it.

  python -m export.check --export_base=DIR [--version=N] [--model_dir=DIR]
      [--benchmark [--benchmark_iters=200] [--benchmark_json=FILE]]
      [--profile [--profile_records=512] [--profile_runs=50]]
  python -m export.check --export_base=DIR --rest_example=predict_features

  1. lists the versions (stored validation AUCs, warm-up records);
  2. prints each signature's inputs and outputs with dtypes and shapes (what
     `saved_model_cli show --all` gives) of the chosen version (default latest);
  3. replays every warm-up record through the loaded SavedModel (outputs must
     be finite probabilities, one per record) and, with --model_dir, compares
     them with the training checkpoint's outputs on the same records;
  4. --benchmark: p50/p99 latency per request of 1, 64 and 512 records through
     each signature of the loaded SavedModel, in this process;
  5. --profile: where a serving_default request of --profile_records
     records spends its time, by stage (export/profiling.py);
  6. --rest_example=SIGNATURE: prints only a REST `:predict` body for that
     signature, built from the version's warm-up records (its own schema).
Exit status 1 when a check fails.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

import tensorflow as tf  # noqa: E402

from export import inspection  # noqa: E402
from export import profiling  # noqa: E402
from export import requests  # noqa: E402
from export import serving  # noqa: E402
from export import versions  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("export_base", None, "Base directory of numbered versions.")
cli.define_string("model_dir", None, "Training run to compare outputs with "
                  "(optional).")
cli.define_integer("version", None, "Version to check (default: the latest).")
cli.define_bool("benchmark", False, "Measure latency per request size.")
cli.define_integer("benchmark_iters", 200, "Timed requests per signature and size.")
cli.define_string("benchmark_sizes", "1,64,512", "Records per request.")
cli.define_string("benchmark_json", None, "Also write the latency rows (and "
                  "the --profile result) here.")
cli.define_bool("profile", False, "Time a serving_default request by stage.")
cli.define_integer("profile_records", 512, "Records in the profiled request.")
cli.define_integer("profile_runs", 50, "Traced runs of the profiled request.")
cli.define_enum("rest_example", None,
                [serving.SIGNATURE_FEATURES, serving.SIGNATURE_EXAMPLES],
                "Print only a REST :predict body for this signature.")
cli.define_integer("rest_rows", 2, "Records in the REST example.")


def main(argv):
  cli.begin_job(argv, required=("export_base",))
  if min(FLAGS.rest_rows, FLAGS.benchmark_iters, FLAGS.profile_records,
         FLAGS.profile_runs) < 1:
    raise app.UsageError("--rest_rows, --benchmark_iters, --profile_records "
                         "and --profile_runs must be >= 1")
  if FLAGS.rest_example:
    _, path = versions.resolve_version(FLAGS.export_base, FLAGS.version)
    logs = requests.read_warmup(versions.extra_path(path, versions.WARMUP_FILE))
    examples = inspection.warmup_examples(logs)[:FLAGS.rest_rows]
    print(json.dumps(requests.rest_bodies(examples, inspection.load_schema(path))
                     [FLAGS.rest_example], indent=1))
    return 0
  try:
    sizes = tuple(int(s) for s in FLAGS.benchmark_sizes.split(","))
  except ValueError as err:
    raise app.UsageError(f"--benchmark_sizes must be comma-separated ints, got "
                         f"{FLAGS.benchmark_sizes!r}") from err
  problems, rows = inspection.run_checks(FLAGS.export_base, FLAGS.version, FLAGS.model_dir,
                              sizes if FLAGS.benchmark else None,
                              FLAGS.benchmark_iters)
  profile = None
  if FLAGS.profile and not problems:
    _, path = versions.resolve_version(FLAGS.export_base, FLAGS.version)
    logs = requests.read_warmup(versions.extra_path(path, versions.WARMUP_FILE))
    profile = profiling.profile(path, inspection.warmup_examples(logs),
                                FLAGS.profile_records, FLAGS.profile_runs)
    print(profiling.table(profile))
  if FLAGS.benchmark_json and (rows or profile):
    with tf.io.gfile.GFile(FLAGS.benchmark_json, "w") as f:
      json.dump({"rows": rows, "iters": FLAGS.benchmark_iters,
                 "profile": profile}, f, indent=1)
  if problems:
    print("check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
    return 1
  print("check passed")
  return 0


def run():
  """Console script `adaftr-check`."""
  cli.run(main)


if __name__ == "__main__":
  run()
