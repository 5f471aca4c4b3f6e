"""Convert a public dataset to TFRecord shards for training.

  python -m pipelines.convert --format=FORMAT --input=PATH --output_dir=DIR \\
      [--skip_bad_rows] [--non_finite=error|replace] [--valid_fraction=0.1] ...
  python -m pipelines.convert --format=census \\
      --input=census-income.test.gz --output_dir=DIR [--split_seed=42] ...
  python -m pipelines.convert --format=tfds --input=aliexpress/us \\
      --output_dir=DIR [--tfds_data_dir=TFDS_DIR] ...

FORMAT: aliexpress_csv, aliexpress_raw, aliccp_raw, aliccp_csv, aliccp_text
(CTR/CVR: valid = the end of the train files), census (UCI census-income,
income and never-married: rows split by seed into train/valid/test), see
pipelines/data/formats/<FORMAT>.py for each layout and what PATH may be;
or tfds: a dataset of pipelines/data/tfds prepared in TFDS_DIR, whose
validation split is the valid split (pipelines/data/formats/tfds_dataset.py).
Writes `{train,valid,test}-*-of-*.tfrecord` (row blocks, or one Example
per row with --record_layout=rows), `schema.json` (features,
vocabularies, normalisation; fitted on the train split only) and
`data_report.json` (also printed). Then:
  python -m pipelines.train --preset=tiny --data_dir=DIR --model_dir=RUN
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402
from pipelines.data import blocks  # noqa: E402
from pipelines.data import formats  # noqa: E402

from adaftr_tf import choices  # noqa: E402

FORMATS = tuple(formats.LAYOUTS)

FLAGS = flags.FLAGS
# The preset the closing hint names per format (the others: `tiny`, a
# seconds-long check that the data trains).
PRESETS = {"census": "census"}
cli.define_enum("format", None, FORMATS, "Input file layout, or tfds.")
cli.define_string("input", None, "Input file or folder; with --format=tfds "
                  "the TFDS dataset name and config (aliexpress/us, ali_ccp).")
cli.define_string("tfds_data_dir", None, "--format=tfds: the TFDS data_dir "
                  "holding the prepared dataset (default: TFDS's own).")
cli.define_string("output_dir", None, "Output folder (must not exist or be "
                    "empty, unless --overwrite).")
cli.define_bool("skip_bad_rows", False, "Skip and count malformed rows "
                  "instead of stopping at the first.")
cli.define_enum("non_finite", "error", list(choices.options(choices.NonFinitePolicy)),
                "A NaN or Inf numerical value: 'error' makes its row a bad "
                "row (stop, or skip with --skip_bad_rows); 'replace' keeps "
                "the row with the field's default 0.0, counted per field in "
                "the data report.")
cli.define_bool("keep_conversions_without_click", False, "Keep rows with a "
                  "conversion but no click (dropped and counted by default; "
                  "funnel data only: census labels are independent).")
cli.define_float("valid_fraction", None, "Share of the rows that forms the "
                 "valid split: the END of the train files (default 0.1), or "
                 "with --format=census a seeded share of all rows (default "
                 "0.2; test is another 0.2). Not with --format=tfds, whose "
                 "validation split is the valid split.")
cli.define_integer("split_seed", None, "--format=census: the seed of its "
                   "train/valid/test split of the rows (default 42). "
                   "Refused by the formats that keep file order.")
cli.define_integer("min_count", 1, "Ids seen fewer times in train are "
                     "out of vocabulary.")
cli.define_integer("max_vocab_size", 0, "Most frequent ids kept per field "
                     "(0: all that pass --min_count).")
cli.define_integer("hash_buckets", 0, "Hash ids into this many buckets per "
                     "field instead of fitting vocabularies (0: vocabularies).")
cli.define_integer("shard_rows", 500_000, "Rows per output shard at most.")
cli.define_integer("buffer_values", 20_000_000, "Values buffered before a "
                     "shard is written (bounds memory for long lists).")
cli.define_enum("record_layout", "blocks",
                list(choices.options(choices.RecordLayout)),
                "How the shards store rows: 'blocks' (column-wise blocks of "
                "--block_rows rows, what training reads fastest) or 'rows' "
                "(one tf.train.Example per row, for other tools).")
cli.define_integer("block_rows", blocks.DEFAULT_BLOCK_ROWS, "Rows per block (--record_layout="
                   "blocks).")
cli.define_bool("overwrite", False, "Replace a non-empty --output_dir.")
cli.define_bool("progress", True, "Show the progress line on stderr.")


def main(argv):
  cli.begin_job(argv, required=("format", "input", "output_dir"), quiet=False)
  from pipelines.data.formats import base
  from pipelines.data.formats import conversion
  options = conversion.Options(  # None: the format's default (or none)
      skip_bad_rows=FLAGS.skip_bad_rows,
      keep_conversions_without_click=FLAGS.keep_conversions_without_click,
      valid_fraction=FLAGS.valid_fraction, split_seed=FLAGS.split_seed,
      min_count=FLAGS.min_count,
      max_vocab_size=FLAGS.max_vocab_size, hash_buckets=FLAGS.hash_buckets,
      shard_rows=FLAGS.shard_rows, buffer_values=FLAGS.buffer_values,
      overwrite=FLAGS.overwrite, progress=FLAGS.progress,
      non_finite=FLAGS.non_finite, tfds_data_dir=FLAGS.tfds_data_dir,
      record_layout=FLAGS.record_layout, block_rows=FLAGS.block_rows)
  try:
    conversion.convert(FLAGS.format, FLAGS.input, FLAGS.output_dir, options)
  except (base.BadRowError, FileNotFoundError, FileExistsError,
          ValueError) as err:
    raise SystemExit(f"error: {err}") from None
  preset = PRESETS.get(FLAGS.format, "tiny")
  print(f"converted into {FLAGS.output_dir}; train with: python -m "
        f"pipelines.train --preset={preset} --data_dir={FLAGS.output_dir} "
        "--model_dir=DIR")


def run():
  """Console script `adaftr-convert`."""
  cli.run(main)


if __name__ == "__main__":
  run()
