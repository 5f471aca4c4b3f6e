"""Export a trained model for TF Serving: versioned, atomic, warm and validated.

  python -m export.export_savedmodel --model_dir=DIR --data_dir=DIR \
      --export_base=DIR [--keep=N] [--include_tau] [--min_ctr_auc=0.5 ...]
      [--max_auc_drop=0.01] [--calibration_tolerance=0.05]
      [--warmup_records=100]

The steps (validate on the validation split, write under a temporary name
with warm-up requests, replay them, publish as the next version, prune):
export/exporter.py. A refused candidate exits with status 1, nothing written.
"""

from __future__ import annotations

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

from export import validation  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("model_dir", None, "Trained model directory.")
cli.define_string("export_base", None, "Base directory of numbered versions.")
cli.define_string("data_dir", None, "Data the model was trained on: its "
                  "validation split validates the candidate and gives the "
                  "warm-up requests.")
cli.define_bool("include_tau", False, "Also output tau (analysis only).")
cli.define_integer("keep", 0, "Keep only the newest N versions (0: keep all).")
cli.define_integer("warmup_records", 100, "Validation examples in the warm-up "
                   "file (one request each, plus one batched request per "
                   "signature).")
for _task in validation.TASKS:
  cli.define_float(f"min_{validation.auc_key(_task)}", validation.DEFAULT_MIN_AUC,
                   f"Refuse to publish when the validation {_task} AUC is lower.")
cli.define_float("max_auc_drop", validation.DEFAULT_MAX_AUC_DROP,
                 "Refuse to publish when an AUC is more than this below the "
                 "latest published version's (negative: no comparison).")
cli.define_float("calibration_tolerance",
                 validation.DEFAULT_CALIBRATION_TOLERANCE,
                 "Refuse to publish when a task's validation predicted/"
                 "observed (after calibration) is further from 1 than this "
                 "or 3 standard errors of the observed rate, whichever is "
                 "larger (negative: no check).")


def policy_from_flags() -> validation.Policy:
  drop, tolerance = FLAGS.max_auc_drop, FLAGS.calibration_tolerance
  return validation.Policy(
      min_auc={t: FLAGS[f"min_{validation.auc_key(t)}"].value
               for t in validation.TASKS},
      max_auc_drop=None if drop < 0 else drop,
      calibration_tolerance=None if tolerance < 0 else tolerance)


def main(argv):
  cli.begin_job(argv, required=("model_dir", "export_base", "data_dir"))
  if FLAGS.keep < 0:
    raise app.UsageError(f"--keep must be >= 0 (0 keeps all), got {FLAGS.keep}")
  if FLAGS.warmup_records < 1:
    raise app.UsageError(f"--warmup_records must be >= 1, got "
                         f"{FLAGS.warmup_records}")
  try:
    from export import exporter  # heavy imports after the flags
    path = exporter.export(FLAGS.model_dir, FLAGS.export_base, data_dir=FLAGS.data_dir,
                  include_tau=FLAGS.include_tau, keep=FLAGS.keep or None,
                  policy=policy_from_flags(),
                  warmup_records=FLAGS.warmup_records)
  except validation.ExportRefused as err:
    print(str(err), file=sys.stderr)
    return 1
  print(f"exported SavedModel: {path}")
  return 0


def run():
  """Console script `adaftr-export`."""
  cli.run(main)


if __name__ == "__main__":
  run()
