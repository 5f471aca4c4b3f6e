"""Export a trained model for TF Serving: validated, warm, versioned, atomic.

`export(model_dir, export_base, data_dir=...)`:
  1. loads the best weights of `model_dir` (`model_dir.load_trained`);
  2. validates: evaluates on the validation split of `data_dir`; refuses
     (`validation.ExportRefused`, nothing written) when an AUC is below its
     floor or more than the allowed drop below the latest published version;
  3. writes the SavedModel to `<export_base>/.tmp-export-*` with
     assets.extra/{config.json, schema.json, metrics.json,
     tf_serving_warmup_requests} (warm-up: the first validation examples);
  4. loads it back and replays every warm-up request, comparing with the
     in-memory model (what TF Serving will run at load time);
  5. renames it to `<export_base>/<version>` (newest + 1); `keep` then
     removes the oldest versions beyond it (never the one just written).
Any failure removes the temporary directory: no numbered directory appears.
See versions.py for the directory layout.
"""

from __future__ import annotations

import json
from typing import Callable

from absl import logging
import adaftr_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf

from adaftr_tf import features as F
from export import requests
from export import serving
from export import validation
from export import verify
from export import versions
from pipelines.data import layout
from pipelines.training import callbacks
from pipelines.training import model_dir as model_dir_lib


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
  if keep is not None and keep < 1:
    raise ValueError(f"keep must be >= 1 (or None to keep all), got {keep}")
  if warmup_records < 1:
    raise ValueError(f"warmup_records must be >= 1, got {warmup_records}")
  model, config, schema = model_dir_lib.load_trained(model_dir)
  calibration = model_dir_lib.read_calibration(model_dir)
  present = versions.versions(export_base)
  latest = present[-1] if present else None
  assets = {versions.CONFIG_FILE: config.to_json(),
            F.SCHEMA_FILE: json.dumps(schema.to_dict(), indent=1)}
  if calibration.curves:
    assets[versions.CALIBRATION_FILE] = calibration.to_json()
  examples = []
  if data_dir is None:
    log("no data_dir: exporting without validation and warm-up requests")
  else:
    metrics = validation.evaluate_candidate(model, config, schema, data_dir,
                                            calibration)
    previous = (versions.read_metrics(versions.version_dir(export_base, latest))
                if latest is not None else None)
    validation.check(metrics, policy or validation.Policy(), previous, latest,
                     data_dir, log,
                     tuple(r.name for r in model.objective.reported))
    assets[versions.METRICS_FILE] = json.dumps(
        validation.stored_metrics(metrics, data_dir, model_dir), indent=1,
        sort_keys=True)
    examples = _validation_examples(data_dir, schema, warmup_records)
  version = (latest or 0) + 1
  tf.io.gfile.makedirs(export_base)
  tmp = versions.new_tmp_dir(export_base, version)
  try:
    _write(model, schema, tmp, include_tau, assets, examples, calibration)
    final = versions.publish(tmp, export_base, version)
  except FileExistsError:
    versions.remove(tmp)
    raise
  except (OSError, tf.errors.OpError) as err:  # e.g. a full or read-only disk
    versions.remove(tmp)
    raise OSError(
        callbacks.os_errno(err),
        f"cannot write version {version} under {export_base} (in {tmp}): "
        f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}; "
        f"nothing was published, the versions present ({present}) are "
        "intact") from err
  except BaseException:
    versions.remove(tmp)
    raise
  if keep:
    removed = versions.prune(export_base, keep, protect=version)
    if removed:
      log(f"--keep={keep}: removed versions {removed}")
  return final


def _validation_examples(data_dir: str, schema: F.FeatureSchema,
                         num: int) -> list[bytes]:
  """The first `num` validation rows as per-row `tf.train.Example`s (row
  blocks re-serialised), features only."""
  return requests.feature_examples(
      layout.split_examples(data_dir, validation.SPLIT, num), schema)


def _write(model, schema, path: str, include_tau: bool, assets: dict,
           examples: list[bytes], calibration=None) -> None:
  """SavedModel + assets.extra (+ warm-up file, replayed and compared)."""
  verbosity = logging.get_verbosity()
  try:
    # tf-keras warns about every unbuilt training-only layer (tasks, heads)
    # that the serving module holds; they are not part of the signatures.
    logging.set_verbosity(logging.ERROR)
    serving.save(model, schema, path, include_tau=include_tau, assets=assets,
                 calibration=calibration)
  finally:
    logging.set_verbosity(verbosity)
  if not examples:
    return
  logs = requests.warmup_logs(examples, schema)
  requests.write_warmup(versions.extra_path(path, versions.WARMUP_FILE), logs)
  replay = verify.replay(tf.saved_model.load(path), logs, model, schema,
                         calibration=calibration)
  if replay.problems:
    raise ValueError("the exported SavedModel failed its warm-up replay: "
                     + "; ".join(replay.problems[:5]))
