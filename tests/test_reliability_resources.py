"""Resource and configuration faults: disks, checkpoints, shards, settings.

Each fault ends in an error that names the path (or the setting) before or
at the point of failure; what was written before stays intact.
"""

import errno
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from absl import flags
from absl.testing import flagsaver

from adaftr_tf import overrides

from adaftr_tf import experiments
from pipelines.training import callbacks as cb
from pipelines.training import distribute
from pipelines.data import records
from pipelines.training import resume
from pipelines import train as train_main
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import train_lib

pytestmark = pytest.mark.reliability
FLAGS = flags.FLAGS


def _tiny(*items):
  return overrides.apply(experiments.get_preset("tiny"), [
      "model.name=multitask", "train.steps_per_epoch=4",
      "train.steps_per_execution=2", "train.checkpoint_every_steps=2",
      *items])


@pytest.fixture
def data(tiny_data):
  return tiny_data


# --- model directory --------------------------------------------------------

def test_a_model_dir_under_a_file_is_refused_before_any_work(tmp_path, data):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  model_dir = str(blocker / "model")
  with pytest.raises(OSError, match=f"--model_dir {model_dir} is not "
                     "writable"):
    train_lib.train(_tiny(), model_dir, str(tmp_path / "fresh_data"),
                   verbose=0, log=lambda _: None)
  assert not os.path.exists(tmp_path / "fresh_data")  # refused before data


def test_a_read_only_model_dir_is_refused(tmp_path, data):
  model_dir = tmp_path / "model"
  model_dir.mkdir()
  model_dir.chmod(0o555)
  try:
    if os.access(model_dir, os.W_OK):
      pytest.skip("running as root: permissions do not block writes (the "
                  "file-as-parent test covers the same check)")
    with pytest.raises(PermissionError, match=f"--model_dir {model_dir} is "
                       "not writable"):
      train_lib.train(_tiny(), str(model_dir), data, verbose=0,
                     log=lambda _: None)
  finally:
    model_dir.chmod(0o755)


# --- a full disk while checkpointing ------------------------------------------

def _small_checkpoints(directory):
  model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
  model.compile(optimizer="adam", loss="mse")
  model.optimizer.build(model.trainable_variables)
  return model, resume.StepCheckpoints(model, directory, directory, 10)


def _disk_full(*args, **kwargs):
  raise OSError(errno.ENOSPC, "No space left on device")


def _tf_disk_full(*args, **kwargs):
  raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")


@pytest.mark.parametrize("fault", [_disk_full, _tf_disk_full])
def test_a_full_disk_names_the_checkpoint_and_keeps_the_earlier(
    tmp_path, monkeypatch, fault):
  model, checkpoints = _small_checkpoints(str(tmp_path))
  model.layers[0].kernel.assign(tf.fill([3, 2], 4.0))
  checkpoints.save(resume.Progress(4))
  before = sorted(os.listdir(tmp_path))
  monkeypatch.setattr(tf.train.Checkpoint, "_write", fault)
  model.layers[0].kernel.assign(tf.fill([3, 2], 8.0))
  with pytest.raises(cb.CheckpointWriteError) as info:
    checkpoints.save(resume.Progress(8))
  assert info.value.errno == errno.ENOSPC
  assert f"cannot write the step checkpoint {tmp_path}/step-8" in str(
      info.value)
  assert "No space left on device" in str(info.value)
  assert "written before are intact" in str(info.value)
  monkeypatch.undo()
  assert sorted(os.listdir(tmp_path)) == before
  fresh, reader = _small_checkpoints(str(tmp_path))
  assert reader.restore().step == 4
  np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), 4.0)


def test_a_full_disk_during_training_stops_naming_the_path(tmp_path, data,
                                                           monkeypatch):
  model_dir = tmp_path / "model"
  real_write = tf.train.Checkpoint._write

  def full_after_two(self, prefix, *args, **kwargs):
    if "step-4" in prefix or "epoch-" in prefix or "best" in prefix:
      return _disk_full()
    return real_write(self, prefix, *args, **kwargs)

  monkeypatch.setattr(tf.train.Checkpoint, "_write", full_after_two)
  with pytest.raises(cb.CheckpointWriteError,
                     match=r"cannot write the (epoch weights|best-epoch "
                           r"weights|step checkpoint) .*" + str(model_dir)):
    train_lib.train(_tiny(), str(model_dir), data, verbose=0,
                   log=lambda _: None)
  monkeypatch.undo()
  steps = str(model_dir / resume.STEPS_DIR)
  assert tf.train.latest_checkpoint(steps).endswith("step-2")
  tf.train.load_checkpoint(tf.train.latest_checkpoint(steps))  # readable


# --- missing or corrupt checkpoints -------------------------------------------

@pytest.fixture
def trained(tiny_run):
  """The shared tiny run's model directory (tests only read it)."""
  return tiny_run["model_dir"]


def _corrupt(prefix):
  for name in os.listdir(os.path.dirname(prefix)):
    if name.startswith(os.path.basename(prefix) + ".data"):
      path = os.path.join(os.path.dirname(prefix), name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)


def test_missing_and_corrupt_best_weights_are_named(trained, tmp_path):
  import shutil
  copy = str(tmp_path / "model")
  shutil.copytree(trained, copy)
  weights = os.path.join(copy, model_dir_lib.BEST_WEIGHTS)
  _corrupt(weights)
  with pytest.raises(ValueError, match=f"weights checkpoint {weights} cannot "
                     "be read"):
    model_dir_lib.load_trained(copy)
  for name in os.listdir(os.path.dirname(weights)):
    os.remove(os.path.join(os.path.dirname(weights), name))
  with pytest.raises(FileNotFoundError, match=f"no trained weights at "
                     f"{weights}"):
    model_dir_lib.load_trained(copy)
  with pytest.raises(FileNotFoundError, match="no config.json in model dir"):
    model_dir_lib.load_trained(str(tmp_path / "nowhere"))
  model_dir_lib.load_trained(trained)  # the original is untouched


def test_an_export_that_fails_to_write_keeps_the_published_versions(
    trained, tmp_path, monkeypatch):
  from export import exporter
  from export import versions
  base = str(tmp_path / "exports")
  first = exporter.export(trained, base, log=lambda _: None)
  before = sorted(os.listdir(first))

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", base)

  monkeypatch.setattr(tf.saved_model, "save", full)
  with pytest.raises(OSError, match=f"cannot write version 2 under {base} "
                     r"[\s\S]*No space left on device[\s\S]*versions present "
                     r"\(\[1\]\) are intact"):
    exporter.export(trained, base, log=lambda _: None)
  assert versions.versions(base) == [1]
  assert sorted(os.listdir(first)) == before
  assert not [n for n in os.listdir(base) if n.startswith(versions.TMP_PREFIX)]


# --- corrupt TFRecord shards ----------------------------------------------------

def _damaged_copy(data, tmp_path, damage):
  import shutil
  copy = str(tmp_path / "data")
  shutil.copytree(data, copy)
  shard = records.list_shards(copy, "train")[1]
  raw = bytearray(open(shard, "rb").read())
  open(shard, "wb").write(bytes(damage(raw)))
  return copy, shard


def _garble(raw):
  raw[len(raw) // 2: len(raw) // 2 + 64] = b"\xff" * 64
  return raw


def _cut_mid_record(raw):
  return raw[: len(raw) - 50]


def _cut_in_last_header(raw):
  """Ends the file 5 bytes into the last record's 12-byte header: TensorFlow's
  reader then stops silently, one record short."""
  start = last = 0
  while start < len(raw):
    last = start
    start += 16 + struct.unpack("<Q", bytes(raw[start:start + 8]))[0]
  return raw[: last + 5]


def test_a_garbled_shard_stops_training_naming_the_file(data, tmp_path):
  copy, shard = _damaged_copy(data, tmp_path, _garble)  # same size
  records.check_manifest(copy, ("train", "valid"))
  assert records.find_corrupt_shard(data) is None
  assert records.find_corrupt_shard(copy)[0] == shard
  with pytest.raises(tf.errors.DataLossError,
                     match=f"TFRecord shard {shard} is corrupt"):
    train_lib.train(_tiny("train.steps_per_epoch=32"), str(tmp_path / "model"),
                   copy, verbose=0, log=lambda _: None)


@pytest.mark.parametrize("damage", [_cut_mid_record, _cut_in_last_header])
def test_a_truncated_shard_is_refused_before_training(data, tmp_path, damage):
  copy, shard = _damaged_copy(data, tmp_path, damage)
  if damage is _cut_in_last_header:  # what the manifest check guards against
    counts = [sum(1 for _ in tf.data.TFRecordDataset(p))
              for p in (records.list_shards(data, "train")[1], shard)]
    assert counts[1] == counts[0] - 1
  with pytest.raises(tf.errors.DataLossError,
                     match=f"TFRecord shard {shard} has \\d+ bytes, "
                           "shards.json records \\d+: the data in .* was "
                           "truncated or changed"):
    train_lib.train(_tiny(), str(tmp_path / "model"), copy, verbose=0,
                   log=lambda _: None)
  assert not os.path.exists(tmp_path / "model" / "steps")


# --- configuration faults, refused before anything is written ---------------

def _run_main(tmp_path, *argv):
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["train", f"--model_dir={tmp_path / 'model'}", "--preset=tiny",
           f"--data_dir={tmp_path / 'data'}", *argv])
    train_main.main(["train"])


@pytest.mark.parametrize("argv, message", [
    (["--override=loss.tau_min=1.0"],
     r"loss.tau_min=1.0 must be < loss.tau_max=1.0"),
    (["--override=loss.tau_min=0.5", "--override=loss.tau_max=0.1"],
     r"loss.tau_min=0.5 must be < loss.tau_max=0.1"),
    (["--override=train.batch_size=1"],
     "train.batch_size=1: in-batch negatives need a batch of at least 2"),
    (["--override=loss.negatives=random_one", "--override=train.batch_size=1"],
     "in-batch negatives need a batch of at least 2"),
    (["--override=data.non_finite_policy=ignore"],
     "data.non_finite_policy='ignore' is not valid"),
    (["--strategy=mirrored", "--devices=/gpu:0"],
     r"--devices \['/gpu:0'\] not found"),
    (["--strategy=mirrored", "--num_cpu_devices=-1"],
     "--num_cpu_devices=-1 must be >= 1"),
    (["--devices=/cpu:0"], "--devices is only for --strategy=mirrored"),
    (["--strategy=parameter_server", "--in_process_cluster=0,1"],
     "an in-process cluster needs >= 1 worker and >= 1 ps"),
])
def test_contradictory_settings_are_refused_before_training(tmp_path, argv,
                                                            message,
                                                            monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match=message):
    _run_main(tmp_path, *argv)
  assert not os.path.exists(tmp_path / "model")
  assert not os.path.exists(tmp_path / "data")


def test_a_replica_batch_too_small_for_local_negatives_is_refused():
  layout = distribute.make_layout("mirrored", 2, 1, 2, 2)
  local = overrides.apply(experiments.get_preset("tiny"), [
      "train.batch_size=2", "runtime.cross_replica_negatives=false"])
  with pytest.raises(ValueError, match=r"train.batch_size=2 gives the "
                     r"contrastive loss batches of 1 instance\(s\) under "
                     r"--strategy=mirrored \(2 replica\(s\)\)"):
    distribute.check_negatives(layout, local)
  distribute.check_negatives(layout, overrides.apply(
      local, ["runtime.cross_replica_negatives=true"]))  # global batch of 2: ok
  distribute.check_negatives(layout, overrides.apply(
      local, ["model.name=multitask"]))  # no contrastive loss: ok
