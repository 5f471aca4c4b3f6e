"""Data directories on a non-local file system: TensorFlow's in-memory `ram://`
stands in for `gs://` (the writers, the shard listing, the manifest, the
reader and the corrupt-shard finder go through tf.io.gfile).

What `ram://` does not do like a real file system (TF 2.21): renaming a
folder renames only the folder entry and leaves its files behind (so
`files.move_dir` moves the files of a remote folder one by one); listdir and
exists match by string prefix (`files.list_dir` lists remote folders with a
glob); opening an existing file with "w" appends instead of truncating (the
test deletes a shard before rewriting it).
"""

import json
import os
import uuid

import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.config import SyntheticConfig
from pipelines.data import files
from pipelines.data import reader
from pipelines.data import records
from pipelines.data import synthetic
from pipelines.data.formats import conversion

TINY = SyntheticConfig(num_train=300, num_valid=120, num_test=80,
                       num_categorical=3, num_numerical=5, vocab_size=50,
                       num_shards=2, seed=3)


@pytest.fixture
def ram_dir():
  root = f"ram://test-{uuid.uuid4().hex}"
  yield root
  files.remove_dir(root)


def _rewrite(path, data):
  tf.io.gfile.remove(path)  # ram:// "w" would append
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(data)


@pytest.fixture
def synthetic_dir(ram_dir):
  data_dir = f"{ram_dir}/data"
  synthetic.ensure_synthetic_dataset(TINY, data_dir, log=lambda _: None)
  return data_dir


def test_synthetic_dataset_on_ram(synthetic_dir, ram_dir):
  names = files.list_dir(synthetic_dir)
  assert {records.MANIFEST_FILE, F.SCHEMA_FILE,
          synthetic.SYNTHETIC_FILE} <= set(names)
  assert files.list_dir(ram_dir) == ["data"]  # no temporary folder left
  for split in F.SPLITS:
    shards = records.list_shards(synthetic_dir, split)
    assert len(shards) == 2 and all(p.startswith("ram://") for p in shards)
  with tf.io.gfile.GFile(f"{synthetic_dir}/{records.MANIFEST_FILE}") as f:
    sizes = json.load(f)["shards"]
  assert len(sizes) == 2 * len(F.SPLITS)
  for name, size in sizes.items():
    assert tf.io.gfile.stat(f"{synthetic_dir}/{name}").length == size > 0
  records.check_manifest(synthetic_dir, F.SPLITS)
  logged = []
  synthetic.ensure_synthetic_dataset(TINY, synthetic_dir, log=logged.append)
  assert logged == [f"using synthetic dataset in {synthetic_dir}"]


def test_reader_batches_from_ram(synthetic_dir):
  schema = F.FeatureSchema.load(synthetic_dir)
  ds = reader.make_dataset(synthetic_dir, "valid", schema, 32, training=False)
  rows = 0
  for features, labels in ds:
    assert set(features) == set(schema.feature_names)
    rows += int(tf.shape(labels[F.CLICK])[0])
  assert rows == TINY.num_valid


def test_corrupt_shard_found_on_ram(synthetic_dir):
  assert records.find_corrupt_shard(synthetic_dir) is None
  path = records.list_shards(synthetic_dir, "test")[1]
  with tf.io.gfile.GFile(path, "rb") as f:
    data = bytearray(f.read())
  data[len(data) // 2] ^= 0xFF  # same size: the manifest cannot tell
  _rewrite(path, bytes(data))
  records.check_manifest(synthetic_dir, F.SPLITS)
  found = records.find_corrupt_shard(synthetic_dir)
  assert found is not None and found[0] == path
  _rewrite(path, bytes(data[:-3]))
  with pytest.raises(tf.errors.DataLossError, match=os.path.basename(path)):
    records.check_manifest(synthetic_dir, F.SPLITS)


def test_converter_writes_to_ram(ram_dir, shared_data_dir):
  out = f"{ram_dir}/converted"
  options = conversion.Options(progress=False, valid_fraction=0.2)
  report = conversion.convert(
      "aliccp_text", os.path.join(shared_data_dir, "small.txt"), out, options,
      log=lambda _: None)
  assert files.list_dir(ram_dir) == ["converted"]
  with tf.io.gfile.GFile(f"{out}/data_report.json") as f:
    assert json.load(f)["splits"] == report["splits"]
  records.check_manifest(out, ("train", "valid"))
  schema = F.FeatureSchema.load(out)
  ds = reader.make_dataset(out, "train", schema, 100, training=False)
  _, labels = next(iter(ds))
  assert len(labels[F.CLICK]) == report["splits"]["train"]["rows"] == 8
  with pytest.raises(FileExistsError, match="--overwrite"):
    conversion.convert("aliccp_text", os.path.join(shared_data_dir,
                                                   "small.txt"), out, options)
