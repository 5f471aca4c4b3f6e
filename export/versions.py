"""The export base directory: numbered versions, their extra assets, pruning.

  <export_base>/<version>/                 a complete SavedModel (TF Serving
                                           loads the highest number)
  <export_base>/<version>/assets.extra/    config.json, schema.json,
                                           metrics.json, tf_serving_warmup_requests
  <export_base>/.tmp-export-*/             an export in progress (TF Serving
                                           ignores names that are not numbers)

A version directory only ever appears by a rename of a complete temporary
directory, and only disappears by a rename to a temporary name followed by its
removal, so a numbered directory is always whole (on local disks and HDFS,
where a folder rename is atomic; object stores such as `gs://` rename object
by object). Every operation goes through `tf.io.gfile`.
"""

from __future__ import annotations

import json
import os
import uuid

import tensorflow as tf

ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"  # the name TF Serving looks for
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
CALIBRATION_FILE = "calibration.json"   # the served calibrators, if any
TMP_PREFIX = ".tmp-export-"
REMOVING_PREFIX = ".tmp-remove-"


def versions(export_base: str) -> list[int]:
  """Sorted integer versions present under `export_base` ([] when missing)."""
  if not tf.io.gfile.isdir(export_base):
    return []
  return sorted(int(n.rstrip("/")) for n in tf.io.gfile.listdir(export_base)
                if n.rstrip("/").isdigit())


def version_dir(export_base: str, version: int) -> str:
  return os.path.join(export_base, str(version))


def extra_path(saved_model_dir: str, name: str) -> str:
  """Path of `name` in the SavedModel's assets.extra."""
  return os.path.join(saved_model_dir, ASSETS_EXTRA, name)


def resolve_version(export_base: str, version: int | None = None) -> tuple[int, str]:
  """(version, directory): `version`, or the latest one when None.

  Raises:
    FileNotFoundError: no version at all, or `version` is not present
      (the message lists the versions present).
  """
  present = versions(export_base)
  if not present:
    raise FileNotFoundError(f"no numbered SavedModel version under {export_base}: "
                            "export one with python -m export.export_savedmodel")
  if version is None:
    version = present[-1]
  if version not in present:
    raise FileNotFoundError(f"version {version} not under {export_base}; "
                            f"present: {present}")
  return version, version_dir(export_base, version)


def read_metrics(saved_model_dir: str) -> dict | None:
  """The stored `metrics.json` of a version, or None when it has none."""
  path = extra_path(saved_model_dir, METRICS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def write_extra(saved_model_dir: str, files: dict[str, str]) -> None:
  """Writes name -> text into the SavedModel's assets.extra."""
  tf.io.gfile.makedirs(os.path.join(saved_model_dir, ASSETS_EXTRA))
  for name, content in files.items():
    with tf.io.gfile.GFile(extra_path(saved_model_dir, name), "w") as f:
      f.write(content)


def new_tmp_dir(export_base: str, version: int) -> str:
  """A fresh, unique temporary directory name beside the versions."""
  return os.path.join(export_base,
                      f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")


def publish(tmp: str, export_base: str, version: int) -> str:
  """Renames the complete `tmp` to `<export_base>/<version>` (atomic).

  Raises:
    FileExistsError: the version appeared meanwhile (a concurrent export).
  """
  final = version_dir(export_base, version)
  if tf.io.gfile.exists(final):
    raise FileExistsError(f"version directory {final} already exists "
                          "(another export ran concurrently); nothing published")
  tf.io.gfile.rename(tmp, final)
  return final


def remove(path: str) -> None:
  """Deletes the folder `path` with its contents; nothing if it is missing."""
  try:
    tf.io.gfile.rmtree(path)
  except tf.errors.NotFoundError:
    pass


def prune(export_base: str, keep: int, protect: int) -> list[int]:
  """Removes the oldest versions beyond the newest `keep`; never `protect`.

  Args:
    export_base: the base directory.
    keep: versions to keep (>= 1).
    protect: a version that is never removed (the one just written).

  Returns:
    The removed versions, oldest first.
  """
  if keep < 1:
    raise ValueError(f"keep must be >= 1 (or unset to keep all), got {keep}")
  present = versions(export_base)
  kept = set(present[-keep:]) | {protect}
  removed = [v for v in present if v not in kept]
  for version in removed:
    # Rename first, so TF Serving never sees a half-deleted version.
    doomed = os.path.join(export_base, f"{REMOVING_PREFIX}{version}-"
                                       f"{uuid.uuid4().hex[:8]}")
    tf.io.gfile.rename(version_dir(export_base, version), doomed)
    remove(doomed)
  return removed
