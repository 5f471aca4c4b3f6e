"""Folder operations on data directories, through `tf.io.gfile`.

A data directory may be local or on any file system TensorFlow reads
(`gs://`, `hdfs://`, `ram://` in tests). The writers put a dataset together
in a temporary sibling folder and move it into place when it is complete
(`move_dir`), so an interrupted write never leaves a folder that looks done.
"""

from __future__ import annotations

import os

import tensorflow as tf


def is_local(path: str) -> bool:
  """Whether `path` names the local file system (no `scheme://` prefix)."""
  return "://" not in path


def absolute(path: str) -> str:
  """`path` made absolute when local; remote paths are already absolute."""
  return os.path.abspath(path) if is_local(path) else path


def list_dir(path: str) -> list[str]:
  """Names in the folder `path`.

  Remote folders are listed by a glob: `ram://`'s listdir matches by string
  prefix, so `out` would also list the files of a sibling `out.partial`.
  """
  if is_local(path):
    return tf.io.gfile.listdir(path)
  return [os.path.basename(p.rstrip("/"))
          for p in tf.io.gfile.glob(os.path.join(path, "*"))]


def is_nonempty_dir(path: str) -> bool:
  """Whether `path` is a folder holding anything."""
  return tf.io.gfile.isdir(path) and bool(list_dir(path))


def remove_dir(path: str) -> None:
  """Deletes the folder `path` with its contents; nothing if it is missing."""
  try:
    tf.io.gfile.rmtree(path)
  except tf.errors.NotFoundError:
    pass


def move_dir(src: str, dst: str) -> None:
  """Moves the flat folder `src` (files only) to `dst`, missing or empty.

  Local folders move with one rename (atomic: a reader sees no folder or a
  whole one). Remote file systems have no atomic folder rename (gfile's
  rename of a `gs://` folder copies object by object; on `ram://` it renames
  the folder entry and leaves the files behind), so the files move one by
  one there, the JSON metadata (schema.json, shards.json, ...) last: until
  it arrives the folder does not read as a complete dataset.

  Raises:
    OSError: `dst` is not empty (FileExistsError when remote), e.g. another
      writer finished first.
    ValueError: `src` holds a sub-folder (remote only).
  """
  if is_local(dst):
    # The rename(2) that tf.io.gfile.rename would make too, raising OSError
    # (what the writers catch when another worker finished first).
    if os.path.isdir(dst):
      os.rmdir(dst)  # fails when another writer filled it meanwhile
    os.rename(src, dst)
    return
  if is_nonempty_dir(dst):
    raise FileExistsError(f"cannot move {src} to {dst}: {dst} is not empty")
  tf.io.gfile.makedirs(dst)
  names = sorted(list_dir(src),
                 key=lambda name: (name.endswith(".json"), name))
  for name in names:
    path = os.path.join(src, name)
    if tf.io.gfile.isdir(path):
      raise ValueError(f"cannot move {src}: it holds the folder {name}; only "
                       "flat data folders (shards and JSON files) move")
    tf.io.gfile.rename(path, os.path.join(dst, name), overwrite=False)
  remove_dir(src)
