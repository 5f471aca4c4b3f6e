"""Does a teacher's tau carry its training rows' own labels?

  python -m pipelines.teacher_leakage --teacher_dir=DIR[,DIR...] \
      --data_dir=DATA [--bins=20] [--max_rows=0] [--output=FILE.json]

--teacher_dir lists the teachers as `loss.teacher_dir` would (one, an
ensemble, or cross-fitted teachers in fold order); --data_dir is the data
they trained on. Prints the AUC of -tau for the second label, within strata
of the planted relatedness on synthetic data, on the training and the
validation split, and their difference, the leakage
(pipelines/training/teacher_leakage.py); --output also writes it as JSON.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("teacher_dir", None,
                  "Teacher model directories, comma-separated, as "
                  "loss.teacher_dir lists them.")
cli.define_string("data_dir", None, "The data directory the teachers "
                  "trained on (its train and valid splits are read).")
cli.define_integer("bins", 20, "Quantile bins of the planted relatedness "
                   "(synthetic data) within which the AUC is taken.")
cli.define_integer("max_rows", 0, "Read about this many rows of each split "
                   "(0: every row).")
cli.define_string("output", None, "Also write the report to this JSON file.")


def main(argv):
  cli.begin_job(argv, required=("teacher_dir", "data_dir"))
  if FLAGS.bins < 1:
    raise app.UsageError(f"--bins must be >= 1, got {FLAGS.bins}")
  if FLAGS.max_rows < 0:
    raise app.UsageError(f"--max_rows must be >= 0, got {FLAGS.max_rows}")
  from adaftr_tf.config import LossConfig  # heavy imports after the flags
  from pipelines.training import teacher_leakage
  # The list as `loss.teacher_dir` reads it (one parser of the comma list).
  directories = list(LossConfig(teacher_dir=FLAGS.teacher_dir).teacher_dirs)
  cli.report(lambda: teacher_leakage.measure(
      FLAGS.data_dir, directories, FLAGS.bins, FLAGS.max_rows),
             teacher_leakage.format_report, FLAGS.output)


def run():
  """Console script `adaftr-teacher-leakage`."""
  cli.run(main)


if __name__ == "__main__":
  run()
