"""Which fields does a linear gate teacher read?

  python -m pipelines.teacher_fields --teacher_dir=DIR --data_dir=DATA \
      [--share=0.03] [--max_rows=0] [--output=FILE.json]

--teacher_dir is a trained AdaFTR model with a linear relatedness network on
the embeddings (`model.relatedness_units=()`, e.g. the registry's
`adaftr_B_transfer_gate_linear_quantile_0.25` runs); --data_dir the data it
trained on. Prints each field's mean share of the teacher's logit variance
in a training batch and how often `loss.teacher_field_share=--share` keeps
it; on synthetic data which fields r depends on and Spearman(-tau, r) with
every field and with the kept ones (pipelines/training/teacher_fields.py);
--output also writes it as JSON.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("teacher_dir", None, "A trained linear gate teacher's "
                  "model directory.")
cli.define_string("data_dir", None, "The data directory the teacher "
                  "trained on (its train and valid splits are read).")
cli.define_float("share", 0.03, "The loss.teacher_field_share to report "
                 "(which fields it keeps), in [0, 1).")
cli.define_integer("max_rows", 0, "Read about this many rows of each split "
                   "(0: every row).")
cli.define_string("output", None, "Also write the report to this JSON file.")


def main(argv):
  cli.begin_job(argv, required=("teacher_dir", "data_dir"))
  if FLAGS.max_rows < 0:
    raise app.UsageError(f"--max_rows must be >= 0, got {FLAGS.max_rows}")
  if not 0.0 <= FLAGS.share < 1.0:
    raise app.UsageError(f"--share must lie in [0, 1), got {FLAGS.share}")
  from pipelines.training import teacher_fields  # heavy, after the flags
  cli.report(lambda: teacher_fields.measure(FLAGS.data_dir, FLAGS.teacher_dir,
                                            FLAGS.share, FLAGS.max_rows),
             teacher_fields.format_report, FLAGS.output)


def run():
  """Console script `adaftr-teacher-fields`."""
  cli.run(main)


if __name__ == "__main__":
  run()
