"""Tests for pipelines/data/reader.py: the tf.data readers of TFRecord shards
(element_spec equal to the in-memory test reader's, order, sharding, the exact
data position of a resumed run, ram://)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.config import SyntheticConfig
from pipelines.data import blocks
from pipelines.data import layout
from pipelines.data import reader
from pipelines.data import synthetic
from tests.helpers.data import SMALL_SYNTHETIC
from tests.helpers.data import concat_rows as _rows
from tests.helpers.data import in_memory_dataset
from tests.helpers.data import sorted_rows as _sorted

CONFIG = SyntheticConfig(num_train=500, num_valid=203, num_test=64,
                         num_categorical=4, num_numerical=6, vocab_size=40,
                         num_shards=4, seed=5)
BATCH = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("input") / "synth")
  schema = synthetic.write_synthetic_dataset(CONFIG, data_dir,
                                             log=lambda _: None)
  return data_dir, schema


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("with_oracle", [True, False])
def test_element_spec_matches_in_memory(data, training, with_oracle):
  data_dir, schema = data
  files = reader.make_dataset(data_dir, "train", schema, BATCH,
                                 training=training, with_oracle=with_oracle)
  memory = in_memory_dataset(
      synthetic.generate_split(CONFIG, "train"), schema, BATCH,
      training=training, with_oracle=with_oracle)
  assert files.element_spec == memory.element_spec
  spec = files.element_spec
  assert len(spec) == (3 if with_oracle else 2)
  batch = BATCH if training else None
  for f in schema.categorical:
    assert spec[0][f.name] == tf.TensorSpec([batch], tf.int64)
  for f in schema.numerical:
    assert spec[0][f.name] == tf.TensorSpec([batch], tf.float32)
  assert spec[1] == {k: tf.TensorSpec([batch], tf.float32)
                     for k in F.LABEL_KEYS}
  if with_oracle:
    assert set(spec[2]) == set(F.ORACLE_KEYS)


def test_training_batches_are_full_and_shuffled(data):
  data_dir, schema = data
  ds = reader.make_dataset(data_dir, "train", schema, BATCH, training=True,
                              seed=1, with_oracle=True)
  sizes = [len(b[1][F.CLICK]) for b in ds]
  assert sizes == [BATCH] * (CONFIG.num_train // BATCH)
  first = [next(iter(ds))[2][F.ORACLE_P_CLICK].numpy() for _ in range(2)]
  assert not np.array_equal(first[0], first[1])   # reshuffled per iteration
  repeated = reader.make_dataset(data_dir, "train", schema, BATCH,
                                    training=True, repeat=True)
  assert len(list(repeated.take(40))) == 40      # more than one epoch


@pytest.mark.parametrize("make", ["files", "memory"])
def test_eval_is_deterministic_and_complete(data, make):
  data_dir, schema = data
  written = synthetic.generate_split(CONFIG, "valid")
  def dataset():
    if make == "files":
      return reader.make_dataset(data_dir, "valid", schema, BATCH,
                                    training=False, with_oracle=True)
    return in_memory_dataset(written, schema, BATCH, training=False,
                                       with_oracle=True)
  sizes = [len(b[1][F.CLICK]) for b in dataset()]
  assert sum(sizes) == CONFIG.num_valid
  assert sizes[-1] == CONFIG.num_valid % BATCH
  first, second = _rows(dataset()), _rows(dataset())
  keys = [*schema.feature_names, *F.LABEL_KEYS, *F.ORACLE_KEYS]
  for k in keys:
    np.testing.assert_array_equal(first[k], second[k], err_msg=k)
  np.testing.assert_array_equal(_sorted(first, keys), _sorted(written, keys))
  assert first[F.CLICK].dtype == np.float32
  if make == "memory":   # no shuffle: array order is kept
    np.testing.assert_array_equal(first[F.CONVERSION], written[F.CONVERSION])


def test_input_context_shards_files(data):
  data_dir, schema = data
  keys = [*schema.feature_names, *F.LABEL_KEYS]
  halves = []
  for k in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=k,
                                         num_replicas_in_sync=2)
    ds = reader.make_dataset(data_dir, "train", schema, 64, training=False,
                                input_context=context)
    assert ds.element_spec[1][F.CLICK].shape.as_list() == [None]
    assert max(len(b[1][F.CLICK]) for b in ds) == 32   # per-replica batch
    halves.append(_sorted(_rows(ds), keys))
  assert len(halves[0]) + len(halves[1]) == CONFIG.num_train
  everything = _sorted(_rows(reader.make_dataset(
      data_dir, "train", schema, 64, training=False)), keys)
  merged = np.concatenate(halves)
  np.testing.assert_array_equal(merged[np.lexsort(merged.T[::-1])], everything)
  as_sets = [set(map(tuple, h)) for h in halves]
  assert not as_sets[0] & as_sets[1]


def test_fewer_files_than_pipelines_raises(data):
  data_dir, schema = data
  context = tf.distribute.InputContext(num_input_pipelines=5,
                                       input_pipeline_id=0)
  with pytest.raises(ValueError, match="4 files but 5 input pipelines"):
    reader.make_dataset(data_dir, "train", schema, BATCH, training=True,
                           input_context=context)


def test_missing_split_raises(data, tmp_path):
  data_dir, schema = data
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    reader.make_dataset(str(tmp_path), "train", schema, BATCH,
                           training=True)
  with pytest.raises(FileNotFoundError, match="'dev'"):
    reader.make_dataset(data_dir, "dev", schema, BATCH, training=False)


def test_in_memory_rejects_missing_columns(data):
  _, schema = data
  columns = synthetic.generate_split(CONFIG, "test")
  del columns[F.ORACLE_P_CVR]
  in_memory_dataset(columns, schema, BATCH, training=True)
  with pytest.raises(ValueError, match=F.ORACLE_P_CVR):
    in_memory_dataset(columns, schema, BATCH, training=True,
                                with_oracle=True)
  with pytest.raises(ValueError, match="batch_size"):
    in_memory_dataset(columns, schema, 0, training=True)


# --- the data position of a resumed run (resume.py) ---------------------------

@pytest.fixture(scope="module")
def tiny(tiny_data):
  """(data_dir, schema) of the tiny preset's synthetic data."""
  return tiny_data, F.FeatureSchema.load(tiny_data)


def _labels(dataset):
  return [np.concatenate([b[1][F.CLICK].numpy(), b[0][k].numpy()])
          for b in dataset for k in sorted(b[0])[:1]]


def test_epochs_dataset_skips_exactly_the_steps_done(tiny):
  data_dir, schema = tiny
  def epochs(first, skip):
    return _labels(reader.make_epochs_dataset(
        data_dir, "train", schema, 64, steps_per_epoch=5, first_epoch=first,
        end_epoch=3, skip_steps=skip, seed=3, shuffle_buffer=512))
  full, resumed = epochs(0, 0), epochs(1, 2)
  assert len(full) == 15 and len(resumed) == 8
  for a, b in zip(full[7:], resumed):  # epoch 1 from its third batch on
    np.testing.assert_array_equal(a, b)
  for a, b in zip(full, epochs(0, 0)):  # order is a function of (seed, epoch)
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(full[0], full[5])  # epochs differ


def test_epochs_dataset_carries_the_oracle_columns_in_the_same_order(tiny):
  data_dir, schema = tiny
  make = lambda oracle: list(reader.make_epochs_dataset(
      data_dir, "train", schema, 64, steps_per_epoch=3, first_epoch=0,
      end_epoch=1, seed=3, shuffle_buffer=512, with_oracle=oracle))
  plain, with_oracle = make(False), make(True)
  assert len(plain[0]) == 2 and len(with_oracle[0]) == 3
  assert set(with_oracle[0][2]) == set(F.ORACLE_KEYS)
  for a, b in zip(plain, with_oracle):
    np.testing.assert_array_equal(a[1][F.CLICK].numpy(),
                                  b[1][F.CLICK].numpy())
    assert b[2][F.ORACLE_RELATEDNESS].shape == (64,)


def test_epochs_dataset_with_seed_zero_under_global_seed_zero(tiny):
  """train.seed=0 sets the global seed 0; tf.data then compares the op seed
  with 0 in Python, so the per-epoch seeds must not be tensors."""
  data_dir, schema = tiny
  tf.random.set_seed(0)
  try:
    batches = _labels(reader.make_epochs_dataset(
        data_dir, "train", schema, 64, steps_per_epoch=2, first_epoch=0,
        end_epoch=2, seed=0, shuffle_buffer=512))
  finally:
    tf.random.set_seed(None)
  assert len(batches) == 4 and not np.array_equal(batches[0], batches[2])
  # Unknown cardinality: Keras keeps one iterator (see make_epochs_dataset).
  assert reader.make_epochs_dataset(
      data_dir, "train", schema, 64, steps_per_epoch=2, first_epoch=0,
      end_epoch=1, seed=0).cardinality() == tf.data.UNKNOWN_CARDINALITY


def test_epochs_dataset_counts_per_replica_batches(tiny):
  data_dir, schema = tiny
  context = tf.distribute.InputContext(num_input_pipelines=1,
                                       input_pipeline_id=0,
                                       num_replicas_in_sync=2)
  ds = reader.make_epochs_dataset(
      data_dir, "train", schema, 64, steps_per_epoch=3, first_epoch=0,
      end_epoch=2, skip_steps=1, input_context=context)
  sizes = [len(b[1][F.CLICK]) for b in ds]
  assert sizes == [32] * ((3 * 2 - 1) * 2)  # 2 per-replica batches per step
  with pytest.raises(ValueError, match="skip_steps=3 must lie in"):
    reader.make_epochs_dataset(data_dir, "train", schema, 64,
                               steps_per_epoch=3, first_epoch=0,
                               end_epoch=1, skip_steps=3)


def test_make_dataset_skip_batches(tiny):
  data_dir, schema = tiny
  def batches(skip):
    return _labels(reader.make_dataset(data_dir, "valid", schema, 100,
                                       training=False, skip_batches=skip))
  full, skipped = batches(0), batches(3)
  assert len(skipped) == len(full) - 3
  for a, b in zip(full[3:], skipped):
    np.testing.assert_array_equal(a, b)


# --- row blocks: windows of several blocks -----------------------------------

BLOCKS = layout.Layout(layout.BLOCKS, 16)   # 125 rows per shard: 8 blocks


@pytest.fixture(scope="module")
def small_blocks(tmp_path_factory):
  """(data_dir, schema, written train columns) in blocks of 16 rows."""
  data_dir = str(tmp_path_factory.mktemp("blocks") / "synth")
  schema = synthetic.write_synthetic_dataset(CONFIG, data_dir,
                                             log=lambda _: None, layout=BLOCKS)
  return data_dir, schema, synthetic.generate_split(CONFIG, "train")


def _epochs(data_dir, schema, seed=3, first=0, end=2, skip=0, batch=25,
            steps=None):
  """make_epochs_dataset, one pass per epoch (500 rows = 20 x 25) unless
  `steps` says otherwise, windows of 4 blocks drawn from a block shuffle
  buffer of 8 (shuffle_buffer 128 rows)."""
  return reader.make_epochs_dataset(
      data_dir, "train", schema, batch, steps_per_epoch=steps or 500 // batch,
      first_epoch=first, end_epoch=end, skip_steps=skip, seed=seed,
      shuffle_buffer=128, with_oracle=True)


def test_block_training_epochs_are_permutations_of_the_rows(small_blocks):
  data_dir, schema, written = small_blocks
  assert blocks.window_blocks(128, BLOCKS.block_rows) == 4
  batches = list(_epochs(data_dir, schema))
  assert len(batches) == 40
  assert all(b[1][F.CLICK].shape == (25,) for b in batches)
  keys = [*schema.feature_names, *F.LABEL_KEYS, *F.ORACLE_KEYS]
  for epoch in (batches[:20], batches[20:]):  # every row once per epoch
    np.testing.assert_array_equal(_sorted(_rows(epoch), keys),
                                  _sorted(written, keys))
  first, second = (_rows(e)[F.ORACLE_P_CLICK] for e in (batches[:20],
                                                         batches[20:]))
  assert not np.array_equal(first, second)       # epochs differ
  # Rows are mixed across the blocks of a window, not kept block by block.
  in_file_order = _rows(reader.make_dataset(
      data_dir, "train", schema, 25, training=False, with_oracle=True))
  position = {v: i for i, v in enumerate(in_file_order[F.ORACLE_P_CLICK])}
  blocks_of_batch = {position[v] // 16 for v in first[:25]}
  assert len(blocks_of_batch) > 2
  # An epoch longer than a pass reads on into the next pass.
  longer = _rows(_epochs(data_dir, schema, end=1, steps=30))
  assert len(longer[F.CLICK]) == 750
  np.testing.assert_array_equal(longer[F.ORACLE_P_CLICK][:500], first)


def test_block_windows_are_half_the_shuffle_buffer():
  assert blocks.window_blocks(100_000, 4096) == 13
  assert blocks.buffer_blocks(100_000, 4096) == 25
  assert blocks.window_blocks(128, 16) == 4
  assert blocks.buffer_blocks(128, 16) == 8
  # At least 2 of each: no batch from one block alone.
  assert blocks.window_blocks(10, 4096) == blocks.buffer_blocks(10, 4096) == 2


def test_block_windows_are_drawn_from_the_block_shuffle_buffer(small_blocks):
  data_dir, schema, _ = small_blocks
  in_file_order = _rows(reader.make_dataset(
      data_dir, "train", schema, 25, training=False, with_oracle=True))
  position = {v: i for i, v in enumerate(in_file_order[F.ORACLE_P_CLICK])}
  # Evaluation interleaves the 4 files block by block: block j of that
  # order is block j // 4 of its file.
  in_file_block = lambda v: position[v] // 16 // 4
  deepest = []
  for seed in range(3, 9):
    rows = _rows(_epochs(data_dir, schema, seed=seed, end=1))
    first_window = rows[F.ORACLE_P_CLICK][:64]     # 4 blocks of 16 rows
    assert len({position[v] // 16 for v in first_window}) == 4
    deepest.append(max(in_file_block(v) for v in first_window))
  # The first window's 4 draws reach stream block 4 + 3 = 7 (in-file block
  # 1) through a buffer of one window, block 8 + 3 = 11 (in-file block 2)
  # through the buffer of 8.
  assert max(deepest) == 2, deepest


def test_block_order_is_a_function_of_seed_and_epoch(small_blocks):
  data_dir, schema, _ = small_blocks
  labels = lambda ds: np.concatenate(
      [b[2][F.ORACLE_P_CLICK].numpy() for b in ds])
  same = labels(_epochs(data_dir, schema, seed=3))
  np.testing.assert_array_equal(labels(_epochs(data_dir, schema, seed=3)),
                                same)
  assert not np.array_equal(labels(_epochs(data_dir, schema, seed=4)), same)
  # An epoch alone is the same epoch as in a longer run.
  np.testing.assert_array_equal(
      labels(_epochs(data_dir, schema, seed=3, first=1, end=2)),
      same[500:])


def test_block_resume_yields_the_tail_of_the_uninterrupted_run(small_blocks):
  data_dir, schema, _ = small_blocks
  skip = 7   # 140 rows: windows of 64 rows end inside the skipped batches
  full = list(_epochs(data_dir, schema, end=2, batch=20))
  resumed = list(_epochs(data_dir, schema, first=1, end=2, skip=skip,
                         batch=20))
  assert len(full) == 50 and len(resumed) == 25 - skip
  for a, b in zip(full[25 + skip:], resumed):
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
      np.testing.assert_array_equal(x, y)


def test_block_evaluation_reads_every_row_once_in_block_order(small_blocks):
  data_dir, schema, written = small_blocks
  ds = reader.make_dataset(data_dir, "train", schema, 60, training=False,
                           with_oracle=True)
  assert ds.element_spec[1][F.CLICK].shape.as_list() == [None]
  sizes = [len(b[1][F.CLICK]) for b in ds]
  assert sizes == [60] * 8 + [20]
  rows = _rows(ds)
  keys = [*schema.feature_names, *F.LABEL_KEYS, *F.ORACLE_KEYS]
  np.testing.assert_array_equal(_sorted(rows, keys), _sorted(written, keys))
  # Blocks of the 4 files interleaved, each block's rows in file order.
  first_block = written[F.ORACLE_P_CLICK][:16]
  np.testing.assert_array_equal(rows[F.ORACLE_P_CLICK][:16], first_block)
  skipped = _rows(reader.make_dataset(data_dir, "train", schema, 60,
                                      training=False, skip_batches=2))
  np.testing.assert_array_equal(skipped[F.CLICK], rows[F.CLICK][120:])


# --- a non-local file system (ram://) -----------------------------------------

def test_reader_batches_from_ram(ram_synthetic_dir):
  schema = F.FeatureSchema.load(ram_synthetic_dir)
  ds = reader.make_dataset(ram_synthetic_dir, "valid", schema, 32,
                           training=False)
  rows = 0
  for features, labels in ds:
    assert set(features) == set(schema.feature_names)
    rows += int(tf.shape(labels[F.CLICK])[0])
  assert rows == SMALL_SYNTHETIC.num_valid
