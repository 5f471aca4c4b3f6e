"""Tests of pipelines/data/files.py: folder operations through tf.io.gfile,
locally and on `ram://` (standing in for `gs://`)."""

import os

import pytest
import tensorflow as tf

from pipelines.data import files


def _write(path, text="x"):
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(text)


def test_local_and_remote_paths():
  assert files.is_local("data/run") and not files.is_local("gs://b/data")
  assert files.absolute("data/run") == os.path.abspath("data/run")
  assert files.absolute("gs://b/data") == "gs://b/data"


@pytest.mark.parametrize("remote", [False, True])
def test_list_dir_lists_only_the_folder(tmp_path, ram_dir, remote):
  root = ram_dir if remote else str(tmp_path)
  tf.io.gfile.makedirs(f"{root}/out")
  tf.io.gfile.makedirs(f"{root}/out.partial")
  _write(f"{root}/out/a.tfrecord")
  _write(f"{root}/out.partial/b.tfrecord")  # a sibling with the same prefix
  assert files.list_dir(f"{root}/out") == ["a.tfrecord"]
  assert files.is_nonempty_dir(f"{root}/out")
  tf.io.gfile.makedirs(f"{root}/empty")
  assert not files.is_nonempty_dir(f"{root}/empty")
  assert not files.is_nonempty_dir(f"{root}/missing")
  files.remove_dir(f"{root}/out")
  files.remove_dir(f"{root}/missing")  # nothing to remove: no error
  assert not tf.io.gfile.exists(f"{root}/out/a.tfrecord")


def test_move_dir_locally(tmp_path):
  src, dst = tmp_path / "src", tmp_path / "dst"
  src.mkdir()
  (src / "shard").write_text("1")
  dst.mkdir()  # an empty destination is replaced
  files.move_dir(str(src), str(dst))
  assert not src.exists() and (dst / "shard").read_text() == "1"
  other = tmp_path / "other"
  other.mkdir()
  (other / "shard").write_text("2")
  with pytest.raises(OSError):  # another writer finished first
    files.move_dir(str(other), str(dst))
  assert (dst / "shard").read_text() == "1"


def test_move_dir_remotely_moves_the_json_last(ram_dir, monkeypatch):
  src, dst = f"{ram_dir}/src", f"{ram_dir}/dst"
  tf.io.gfile.makedirs(src)
  for name in ("shards.json", "train-0.tfrecord", "schema.json",
               "valid-0.tfrecord"):
    _write(f"{src}/{name}", name)
  moved = []
  rename = tf.io.gfile.rename

  def recording(old, new, overwrite=False):
    moved.append(os.path.basename(old))
    return rename(old, new, overwrite=overwrite)

  monkeypatch.setattr(tf.io.gfile, "rename", recording)
  files.move_dir(src, dst)
  assert moved == ["train-0.tfrecord", "valid-0.tfrecord", "schema.json",
                   "shards.json"]
  assert sorted(files.list_dir(dst)) == sorted(moved)
  with tf.io.gfile.GFile(f"{dst}/schema.json") as f:
    assert f.read() == "schema.json"
  assert not tf.io.gfile.exists(f"{src}/schema.json")


def test_move_dir_remotely_refuses_a_full_destination_or_a_sub_folder(
    ram_dir):
  src, dst = f"{ram_dir}/src", f"{ram_dir}/dst"
  tf.io.gfile.makedirs(f"{src}/nested")
  _write(f"{src}/nested/x")
  tf.io.gfile.makedirs(dst)
  _write(f"{dst}/y")
  with pytest.raises(FileExistsError, match=f"{dst} is not empty"):
    files.move_dir(src, dst)
  with pytest.raises(ValueError, match="holds the folder nested"):
    files.move_dir(src, f"{ram_dir}/fresh")
