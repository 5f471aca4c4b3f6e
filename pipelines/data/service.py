"""Training input through a tf.data service (`data.service`, `--data_service`).

TensorFlow's tf.data service runs an input pipeline on separate processes: a
dispatcher hands out work, workers run the pipeline and stream its elements
to the training process. Here the workers run one pass of the training split
exactly as `reader.make_dataset` builds it (files -> records or decoded
windows of row blocks -> shuffled rows -> parsed `(features, labels[,
oracle])` batches), with two changes that `distributed_epoch` needs:

  * the file list is not shuffled: the dispatcher splits the pipeline's
    source (the files) among the workers, and a shuffled source makes every
    worker read everything (measured, TF 2.21); the dispatcher hands the
    files out in the order the workers ask for them, and the workers still
    shuffle rows (a block-level buffer and the window permutation);
  * the workers keep their last partial batch (`drop_remainder=False`); the
    training process merges the workers' batches with `rebatch` to the
    static per-replica batch.

Everything with an epoch structure runs in the training process: one pass =
one anonymous service job, repeated (a new job) when an epoch needs more rows
than a pass holds, cut to `steps_per_epoch` steps, the first epoch's finished
steps skipped on a resume, epochs concatenated (`reader.chain_epochs`).
Splitting, concatenating two passes and `repeat().take()` inside one job
gave duplicated or missing rows (measured), hence one pass per job.

Semantics: in `distributed_epoch` mode every training row is read exactly
once per pass, whatever the number of workers. The order depends on which
worker asks first, not on the seed: a resumed job continues at the right
step, but not with the batches an uninterrupted run would have trained.
"""

from __future__ import annotations

import os
import socket

from adaftr_tf import features as F
# The one parser of dispatcher addresses (the config validates with it too):
# `grpc://host:port` from `grpc://host:port` or `host:port`, else ValueError.
from adaftr_tf.config.checks import service_address as address
import tensorflow as tf

from pipelines.data import reader

# Every row of the source once per job, split dynamically among the workers.
PROCESSING_MODE = "distributed_epoch"


def check_reachable(dispatcher: str, timeout_s: float = 10.0) -> str:
  """Returns `address(dispatcher)` if a TCP connection to it opens.

  tf.data retries an unreachable dispatcher without end when the dataset is
  built; this fails first, naming the address.

  Raises:
    ConnectionError: nothing accepts connections there within `timeout_s`.
  """
  target = address(dispatcher)
  host, _, port = target[len("grpc://"):].rpartition(":")
  try:
    socket.create_connection((host.strip("[]"), int(port)), timeout_s).close()
  except OSError as err:
    raise ConnectionError(
        f"no tf.data service dispatcher answers at {target} ({err}); start "
        "one (README 'Scaling out', tf.data service) or fix data.service / "
        "--data_service") from None
  return target


def one_pass(data_dir: str, split: str, schema: F.FeatureSchema,
             batch_size: int, dispatcher: str, *, seed: int,
             shuffle_buffer: int, with_oracle: bool) -> tf.data.Dataset:
  """One pass of a split, read by the service's workers.

  Args:
    data_dir: the data directory; the workers open its files, so it must
      be a path they can read (shared storage, `gs://`, ...); a relative
      local path is made absolute.
    split, schema, with_oracle: as in `reader.make_dataset`.
    batch_size: the per-replica batch.
    dispatcher: the dispatcher's address (`address`).
    seed, shuffle_buffer: the workers' row shuffles (`reader.make_dataset`).

  Returns:
    `(features, labels[, oracle])` batches of `[batch_size]` rows (the
    workers' last batches may be smaller) holding every row of the split
    once, in an order set by the workers' timing. Each iteration starts a
    new service job.
  """
  if "://" not in data_dir:  # the workers resolve paths in their own folder
    data_dir = os.path.abspath(data_dir)
  ds = reader.make_dataset(
      data_dir, split, schema, batch_size, training=True,
      with_oracle=with_oracle, shuffle_buffer=shuffle_buffer, seed=seed,
      drop_remainder=False, shuffle_files=False)
  return ds.apply(tf.data.experimental.service.distribute(
      processing_mode=PROCESSING_MODE, service=address(dispatcher)))


def epochs_dataset(data_dir: str, split: str, schema: F.FeatureSchema,
                   batch_size: int, *, dispatcher: str, steps_per_epoch: int,
                   first_epoch: int, end_epoch: int, skip_steps: int = 0,
                   seed: int = 0, shuffle_buffer: int = 100_000,
                   input_context: tf.distribute.InputContext | None = None,
                   with_oracle: bool = False) -> tf.data.Dataset:
  """Training batches of epochs `[first_epoch, end_epoch)` from the service.

  The counterpart of `reader.make_epochs_dataset` (same arguments and
  element spec, same number of batches), for one input pipeline.

  Args:
    dispatcher: the dispatcher's address (`address`).
    input_context: None, or one with a single input pipeline (the default
      and mirrored strategies); `batch_size` is the global batch.
    The others: as in `reader.make_epochs_dataset`.

  Returns:
    `(features, labels[, oracle])` batches of a static `[per-replica
    batch]`: `(steps_per_epoch * (end_epoch - first_epoch) - skip_steps) *
    reader.batches_per_step(input_context)` of them.

  Raises:
    ValueError: several input pipelines, a bad address, batch or epoch
      range.
    ConnectionError: no dispatcher at `dispatcher` (`check_reachable`).
  """
  if input_context is not None and input_context.num_input_pipelines > 1:
    raise ValueError(
        f"a tf.data service feeds one input pipeline, not "
        f"{input_context.num_input_pipelines}: use the default or mirrored "
        "strategy")
  dispatcher = check_reachable(dispatcher)
  local_batch = reader.per_replica_batch(batch_size, input_context)

  def epoch_batches(epoch: int) -> tf.data.Dataset:
    rows = one_pass(data_dir, split, schema, local_batch, dispatcher,
                    seed=seed * reader.EPOCH_SEED_STRIDE + epoch,
                    shuffle_buffer=shuffle_buffer, with_oracle=with_oracle)
    # The rebatch makes the batch static; repeat: a new job, another pass.
    return rows.rebatch(local_batch, drop_remainder=True).repeat()

  return reader.chain_epochs(
      epoch_batches, steps_per_epoch=steps_per_epoch,
      first_epoch=first_epoch, end_epoch=end_epoch, skip_steps=skip_steps,
      per_step=reader.batches_per_step(input_context)).prefetch(
          tf.data.AUTOTUNE)
