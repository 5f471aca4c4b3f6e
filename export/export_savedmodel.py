"""Export a trained model for TF Serving.

  python -m export.export_savedmodel --model_dir=DIR --export_base=DIR

Writes `<export_base>/<version>/` (integer version, one more than the newest
present) atomically: the SavedModel is written to a temporary directory beside
it and renamed into place only when complete, so TF Serving never sees a
half-written version. The run's config.json and schema.json are copied into
the SavedModel's assets.extra.
"""

from __future__ import annotations

import os
import shutil

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from pipelines import cli  # noqa: E402

import adaftr_tf  # noqa: E402,F401
import tensorflow as tf  # noqa: E402

from adaftr_tf import features as F  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("model_dir", None, "Trained model directory.")
cli.define_string("export_base", None, "Base directory of numbered versions.")
cli.define_bool("include_tau", False, "Also output tau (analysis only).")

TMP_PREFIX = ".tmp-export-"


def versions(export_base: str) -> list[int]:
  """Sorted integer versions present under `export_base`."""
  if not tf.io.gfile.isdir(export_base):
    return []
  return sorted(int(n.rstrip("/")) for n in tf.io.gfile.listdir(export_base)
                if n.rstrip("/").isdigit())


def export(model_dir: str, export_base: str, include_tau: bool = False) -> str:
  """Exports the best weights of `model_dir`; returns the version directory."""
  from pipelines import training
  model, config, schema = training.load_trained(model_dir)
  version = (versions(export_base) or [0])[-1] + 1
  tf.io.gfile.makedirs(export_base)
  tmp = os.path.join(export_base, f"{TMP_PREFIX}{version}")
  final = os.path.join(export_base, str(version))
  if tf.io.gfile.exists(tmp):
    tf.io.gfile.rmtree(tmp)
  verbosity = logging.get_verbosity()
  try:
    from export import serving
    # tf-keras warns about every unbuilt training-only layer (tasks, heads)
    # that the serving module holds; they are not part of the signatures.
    logging.set_verbosity(logging.ERROR)
    serving.save(model, schema, tmp, include_tau=include_tau,
                 assets={"config.json": config.to_json(),
                         F.SCHEMA_FILE: _read(os.path.join(model_dir,
                                                           F.SCHEMA_FILE))})
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  finally:
    logging.set_verbosity(verbosity)
  return final


def _read(path: str) -> str:
  with tf.io.gfile.GFile(path) as f:
    return f.read()


def main(argv):
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for name in ("model_dir", "export_base"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  path = export(FLAGS.model_dir, FLAGS.export_base, FLAGS.include_tau)
  print(f"exported SavedModel: {path}")


if __name__ == "__main__":
  app.run(main)
