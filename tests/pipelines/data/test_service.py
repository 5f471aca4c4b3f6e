"""Tests of pipelines/data/service.py on an in-process tf.data service (a
dispatcher and two workers, `data_service` in tests/conftest.py): every
training row once per pass in both record layouts, static batches, the epoch
structure kept by the training process, the address and the refusals."""

import collections
import os
import socket

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.config import SyntheticConfig
from pipelines.data import layout
from pipelines.data import reader
from pipelines.data import service
from pipelines.data import synthetic
from tests.helpers.data import concat_rows
from tests.helpers.data import sorted_rows

# 500 training rows in 4 shards: 15 full batches of 32 and 20 rows more.
CONFIG = SyntheticConfig(num_train=500, num_valid=64, num_test=32,
                         num_categorical=3, num_numerical=4, vocab_size=40,
                         num_shards=4, seed=11)
BATCH = 32
LAYOUTS = {"blocks": layout.Layout(block_rows=32), "rows": layout.ROWS_LAYOUT}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def data(request, tmp_path_factory):
  """(data_dir, schema, every train row as a sorted table, keys)."""
  data_dir = str(tmp_path_factory.mktemp(request.param) / "synth")
  schema = synthetic.write_synthetic_dataset(
      CONFIG, data_dir, log=lambda _: None, layout=LAYOUTS[request.param])
  assert layout.load(data_dir) == LAYOUTS[request.param]
  keys = [*schema.feature_names, *F.LABEL_KEYS, *F.ORACLE_KEYS]
  written = sorted_rows(synthetic.generate_split(CONFIG, "train"), keys)
  return data_dir, schema, written, keys


def _epochs(data_dir, schema, dispatcher, steps, first=0, end=1, skip=0,
            input_context=None):
  return service.epochs_dataset(
      data_dir, "train", schema, BATCH, dispatcher=dispatcher,
      steps_per_epoch=steps, first_epoch=first, end_epoch=end,
      skip_steps=skip, seed=3, shuffle_buffer=64,
      input_context=input_context, with_oracle=True)


def _counts(rows, keys):
  """How often each distinct row occurs: a Counter of row tuples."""
  return collections.Counter(map(tuple, sorted_rows(rows, keys)))


def test_address_forms():
  assert service.address("localhost:5050") == "grpc://localhost:5050"
  assert service.address("grpc://h:1") == "grpc://h:1"
  with pytest.raises(ValueError, match="must look like grpc://HOST:PORT"):
    service.address("grpc://h")


def test_an_unreachable_dispatcher_is_named_not_waited_for(data):
  data_dir, schema, _, _ = data
  with socket.socket() as unused:  # a free port that nothing listens on
    unused.bind(("localhost", 0))
    port = unused.getsockname()[1]
  with pytest.raises(ConnectionError, match=(
      f"no tf.data service dispatcher answers at grpc://localhost:{port}")):
    _epochs(data_dir, schema, f"localhost:{port}", 5)


def test_one_pass_reads_every_row_exactly_once(data, data_service):
  data_dir, schema, written, keys = data
  one_pass = service.one_pass(data_dir, "train", schema, BATCH, data_service,
                              seed=3, shuffle_buffer=64, with_oracle=True)
  assert "DataService" in type(one_pass).__name__  # read by the workers
  rows = concat_rows(one_pass)
  np.testing.assert_array_equal(sorted_rows(rows, keys), written)
  # The workers shuffled the rows: not the files' order.
  in_file_order = concat_rows(reader.make_dataset(
      data_dir, "train", schema, BATCH, training=False, with_oracle=True))
  assert not np.array_equal(rows[F.ORACLE_P_CLICK],
                            in_file_order[F.ORACLE_P_CLICK])


def test_epochs_are_static_batches_of_one_pass_each(data, data_service):
  data_dir, schema, written, keys = data
  steps = 500 // BATCH  # 15: one pass (the last 20 rows are left over)
  batches = list(_epochs(data_dir, schema, data_service, steps, end=2,
                         skip=4))
  assert len(batches) == 2 * steps - 4
  spec = _epochs(data_dir, schema, data_service, steps).element_spec
  assert all(s.shape == (BATCH,) for part in spec for s in part.values())
  all_rows = set(map(tuple, written))
  for epoch in (batches[:steps - 4], batches[steps - 4:]):
    counts = _counts(concat_rows(epoch), keys)
    assert max(counts.values()) == 1           # no row twice in an epoch
    assert set(counts) <= all_rows
    assert sum(counts.values()) == len(epoch) * BATCH


@pytest.mark.slow  # ~3 s: three passes
def test_an_epoch_longer_than_a_pass_runs_further_passes(data, data_service):
  data_dir, schema, written, keys = data
  rows = concat_rows(_epochs(data_dir, schema, data_service, steps=40))
  assert len(rows[F.CLICK]) == 40 * BATCH  # passes of 480, 480, then 320
  counts = _counts(rows, keys)
  assert max(counts.values()) <= 3
  assert len(counts) >= 480 and set(counts) <= set(map(tuple, written))


def test_replicas_of_one_pipeline_get_per_replica_batches(data, data_service):
  data_dir, schema, _, _ = data
  context = tf.distribute.InputContext(
      num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
  batches = list(_epochs(data_dir, schema, data_service, steps=5,
                         input_context=context))
  assert len(batches) == 10  # 2 per-replica batches per step
  assert all(b[1][F.CLICK].shape == (BATCH // 2,) for b in batches)


def test_several_input_pipelines_are_refused(data):
  data_dir, schema, _, _ = data
  context = tf.distribute.InputContext(
      num_input_pipelines=2, input_pipeline_id=0, num_replicas_in_sync=2)
  with pytest.raises(ValueError, match="feeds one input pipeline, not 2"):
    _epochs(data_dir, schema, "localhost:1", 5, input_context=context)



def test_a_relative_data_dir_reaches_workers_in_another_folder(
    data, data_service, monkeypatch, tmp_path):
  data_dir, schema, written, keys = data
  monkeypatch.chdir(os.path.dirname(data_dir))
  one_pass = service.one_pass(os.path.basename(data_dir), "train", schema,
                              BATCH, data_service, seed=3, shuffle_buffer=64,
                              with_oracle=True)
  monkeypatch.chdir(tmp_path)  # the in-process workers' folder too
  np.testing.assert_array_equal(sorted_rows(concat_rows(one_pass), keys),
                                written)
