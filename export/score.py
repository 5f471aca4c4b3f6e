"""Score serialized tf.Examples with an exported SavedModel, in a bare process.

  python -m export.score --saved_model=DIR --records=FILE.tfrecord [--num=5]

Imports TensorFlow and absl only (no tf-keras, no adaftr_tf; the flag
helpers in pipelines.cli import absl alone): this is what a serving
process has. Prints one JSON object: {"outputs": {name: [values]}, "num": n}.
"""

import json

from absl import app
from absl import flags
import tensorflow as tf

from pipelines import cli

FLAGS = flags.FLAGS
cli.define_string("saved_model", None, "SavedModel directory.")
cli.define_string("records", None, "TFRecord file of serialized tf.Example.")
cli.define_integer("num", 5, "Number of records to score.")
cli.define_string("signature", "serving_default", "Signature to call.")


def score(saved_model: str, records: str, num: int,
          signature: str = "serving_default") -> dict:
  """Runs the first `num` records of `records` through `signature`."""
  loaded = tf.saved_model.load(saved_model)
  if signature not in loaded.signatures:
    raise ValueError(f"signature {signature!r} not in {list(loaded.signatures)}")
  examples = [r.numpy() for r in tf.data.TFRecordDataset(records).take(num)]
  if not examples:
    raise ValueError(f"no records in {records}")
  outputs = loaded.signatures[signature](examples=tf.constant(examples))
  return {"num": len(examples),
          "outputs": {k: v.numpy().tolist() for k, v in sorted(outputs.items())}}


def main(argv):
  del argv
  if not FLAGS.saved_model or not FLAGS.records:
    raise app.UsageError("--saved_model and --records are required")
  print(json.dumps(score(FLAGS.saved_model, FLAGS.records, FLAGS.num,
                         FLAGS.signature)))


def run():
  """Console script `adaftr-score`."""
  cli.run(main)


if __name__ == "__main__":
  run()
