"""Fixtures of the data tests: TensorFlow's in-memory `ram://` file system
stands in for `gs://` (the writers, the shard listing, the manifest, the reader
and the corrupt-shard finder go through tf.io.gfile).

What `ram://` does not do like a real file system (TF 2.21): renaming a
folder renames only the folder entry and leaves its files behind (so
`files.move_dir` moves the files of a remote folder one by one); listdir and
exists match by string prefix (`files.list_dir` lists remote folders with a
glob); opening an existing file with "w" appends instead of truncating (the
records test deletes a shard before rewriting it).
"""

import uuid

import pytest

from pipelines.data import files
from pipelines.data import synthetic
from tests.helpers.data import SMALL_SYNTHETIC


@pytest.fixture
def ram_dir():
  root = f"ram://test-{uuid.uuid4().hex}"
  yield root
  files.remove_dir(root)


@pytest.fixture
def ram_synthetic_dir(ram_dir):
  """SMALL_SYNTHETIC written to `ram://.../data`."""
  data_dir = f"{ram_dir}/data"
  synthetic.ensure_synthetic_dataset(SMALL_SYNTHETIC, data_dir,
                                     log=lambda _: None)
  return data_dir
