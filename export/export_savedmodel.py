"""Export a trained model for TF Serving: versioned, atomic, warm and validated.

  python -m export.export_savedmodel --model_dir=DIR --data_dir=DIR \
      --export_base=DIR [--keep=N] [--include_tau] [--min_ctr_auc=0.5 ...]
      [--max_auc_drop=0.01] [--warmup_records=100]

Steps (see export/versions.py for the directory layout):
  1. load the best weights of `--model_dir` (`train_lib.load_trained`);
  2. validate: evaluate on the validation split of `--data_dir`; refuse (exit
     status 1, nothing written) when an AUC is below its floor or more than
     `--max_auc_drop` below the latest published version's stored metrics;
  3. write the SavedModel to `<export_base>/.tmp-export-*` with
     assets.extra/{config.json, schema.json, metrics.json,
     tf_serving_warmup_requests} (warm-up: the first `--warmup_records`
     validation examples);
  4. load it back and replay every warm-up request, comparing with the
     in-memory model (what TF Serving will run at load time);
  5. rename it to `<export_base>/<version>` (newest + 1); then `--keep=N`
     removes the oldest versions beyond N (never the one just written).
Any failure removes the temporary directory: no numbered directory appears.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Callable

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from pipelines import cli  # noqa: E402

import adaftr_tf  # noqa: E402,F401
import tensorflow as tf  # noqa: E402

from adaftr_tf import features as F  # noqa: E402
from export import versions  # noqa: E402
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


def export(model_dir: str, export_base: str, *, data_dir: str | None = None,
           include_tau: bool = False, keep: int | None = None,
           policy: validation.Policy | None = None,
           warmup_records: int = 100,
           log: Callable[[str], None] = print) -> str:
  """Exports the best weights of `model_dir`; returns the version directory.

  Args:
    model_dir: a training run's directory.
    export_base: base directory of the numbered versions.
    data_dir: the run's data; None exports without validation, metrics and
      warm-up requests (library use only; the command line requires it).
    include_tau: add the `tau` analysis output.
    keep: keep only the newest `keep` versions afterwards (None: all).
    policy: validation floors and allowed drop (default: `Policy()`).
    warmup_records: validation examples in the warm-up file (>= 1).
    log: where progress lines go.

  Raises:
    validation.ExportRefused: the candidate failed validation.
    FileNotFoundError / ValueError: bad inputs, or a failed warm-up replay.
    OSError: the version could not be written (e.g. a full disk), naming
      the export base; nothing is published and earlier versions are intact.
  """
  from pipelines.training import callbacks
  from pipelines.training import train_lib
  if keep is not None and keep < 1:
    raise ValueError(f"keep must be >= 1 (or None to keep all), got {keep}")
  if warmup_records < 1:
    raise ValueError(f"warmup_records must be >= 1, got {warmup_records}")
  model, config, schema = train_lib.load_trained(model_dir)
  present = versions.versions(export_base)
  latest = present[-1] if present else None
  assets = {versions.CONFIG_FILE: config.to_json(),
            F.SCHEMA_FILE: json.dumps(schema.to_dict(), indent=1)}
  examples = []
  if data_dir is None:
    log("no data_dir: exporting without validation and warm-up requests")
  else:
    metrics = validation.evaluate_candidate(model, config, schema, data_dir)
    previous = (versions.read_metrics(versions.version_dir(export_base, latest))
                if latest is not None else None)
    validation.check(metrics, policy or validation.Policy(), previous, latest,
                     data_dir, log)
    assets[versions.METRICS_FILE] = json.dumps(
        validation.stored_metrics(metrics, data_dir, model_dir), indent=1,
        sort_keys=True)
    examples = _validation_examples(data_dir, schema, warmup_records)
  version = (latest or 0) + 1
  tf.io.gfile.makedirs(export_base)
  tmp = versions.new_tmp_dir(export_base, version)
  try:
    _write(model, schema, tmp, include_tau, assets, examples)
    final = versions.publish(tmp, export_base, version)
  except FileExistsError:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  except (OSError, tf.errors.OpError) as err:  # e.g. a full or read-only disk
    shutil.rmtree(tmp, ignore_errors=True)
    raise OSError(
        callbacks.os_errno(err),
        f"cannot write version {version} under {export_base} (in {tmp}): "
        f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}; "
        f"nothing was published, the versions present ({present}) are "
        "intact") from err
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  if keep:
    removed = versions.prune(export_base, keep, protect=version)
    if removed:
      log(f"--keep={keep}: removed versions {removed}")
  return final


def _validation_examples(data_dir: str, schema: F.FeatureSchema,
                         num: int) -> list[bytes]:
  """The first `num` validation records, features only."""
  from export import requests
  from pipelines.data import records
  dataset = tf.data.TFRecordDataset(records.list_shards(data_dir, validation.SPLIT))
  return requests.feature_examples([r.numpy() for r in dataset.take(num)], schema)


def _write(model, schema, path: str, include_tau: bool, assets: dict,
           examples: list[bytes]) -> None:
  """SavedModel + assets.extra (+ warm-up file, replayed and compared)."""
  from export import requests
  from export import serving
  from export import verify
  verbosity = logging.get_verbosity()
  try:
    # tf-keras warns about every unbuilt training-only layer (tasks, heads)
    # that the serving module holds; they are not part of the signatures.
    logging.set_verbosity(logging.ERROR)
    serving.save(model, schema, path, include_tau=include_tau, assets=assets)
  finally:
    logging.set_verbosity(verbosity)
  if not examples:
    return
  logs = requests.warmup_logs(examples, schema)
  requests.write_warmup(versions.extra_path(path, versions.WARMUP_FILE), logs)
  replay = verify.replay(tf.saved_model.load(path), logs, model, schema)
  if replay.problems:
    raise ValueError("the exported SavedModel failed its warm-up replay: "
                     + "; ".join(replay.problems[:5]))


def policy_from_flags() -> validation.Policy:
  drop = FLAGS.max_auc_drop
  return validation.Policy(
      min_auc={t: FLAGS[f"min_{validation.auc_key(t)}"].value
               for t in validation.TASKS},
      max_auc_drop=None if drop < 0 else drop)


def main(argv):
  cli.begin_job(argv, required=("model_dir", "export_base", "data_dir"))
  if FLAGS.keep < 0:
    raise app.UsageError(f"--keep must be >= 0 (0 keeps all), got {FLAGS.keep}")
  if FLAGS.warmup_records < 1:
    raise app.UsageError(f"--warmup_records must be >= 1, got "
                         f"{FLAGS.warmup_records}")
  try:
    path = export(FLAGS.model_dir, FLAGS.export_base, data_dir=FLAGS.data_dir,
                  include_tau=FLAGS.include_tau, keep=FLAGS.keep or None,
                  policy=policy_from_flags(),
                  warmup_records=FLAGS.warmup_records)
  except validation.ExportRefused as err:
    print(str(err), file=sys.stderr)
    return 1
  print(f"exported SavedModel: {path}")
  return 0


if __name__ == "__main__":
  app.run(main)
