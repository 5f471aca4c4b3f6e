"""The `fit` loop of the training job: inputs, model, callbacks, resume.

`fit(plan, strategy, ...)` builds the model under the strategy, restores the
newest step checkpoint, and runs Keras `fit` once per segment: the rest of an
interrupted epoch (its data skipped to where the killed process stopped), then
the remaining epochs. See pipelines/training/resume.py for the checkpoint contract.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re

import tensorflow as tf
import tf_keras

from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf.config import Config
from pipelines.data import datadir
from pipelines.data import reader
from pipelines.data import service
from pipelines.training import callbacks as cb
from pipelines.training import distribute
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import resume
from pipelines.training import teacher

@dataclasses.dataclass(frozen=True)
class Plan:
  """What one training job runs: config, data, directories, layout, steps."""

  config: Config
  schema: F.FeatureSchema
  data_dir: str
  model_dir: str   # the chief's directory (read on resume)
  out_dir: str     # where this process writes (model_dir on the chief)
  chief: bool
  layout: distribute.Layout
  steps: int
  validation_steps: int

  @property
  def best_weights(self) -> str:
    """Where this process saves the best epoch's weights."""
    return os.path.join(self.out_dir, model_dir_lib.BEST_WEIGHTS)


def _valid_input(plan: Plan, strategy):
  """The validation input of `fit` under the plan's strategy."""
  t = plan.config.train
  # Several pipelines (workers) or asynchronous workers: repeat, so that every
  # worker has `validation_steps` batches whatever the size of its files.
  repeat = plan.layout.pipelines > 1 or plan.layout.strategy == distribute.PS

  def valid_fn(context):
    return reader.make_dataset(
        plan.data_dir, "valid", plan.schema, t.eval_batch_size,
        training=False, input_context=context, repeat=repeat,
        with_oracle=plan.config.needs_oracle)

  if plan.layout.strategy == distribute.PS:
    return tf_keras.utils.experimental.DatasetCreator(valid_fn)
  return strategy.distribute_datasets_from_function(valid_fn)


def _train_input(plan: Plan, strategy, initial_epoch: int, end_epoch: int,
                 skip: int):
  """The training input of one `fit` call (epochs [initial, end), skip)."""
  c, t = plan.config, plan.config.train
  if plan.layout.strategy == distribute.PS:
    # Asynchronous workers: each reads every file in its own random order.
    def ps_train_fn(context):
      return reader.make_dataset(
          plan.data_dir, "train", plan.schema, t.batch_size, training=True,
          input_context=context, shuffle_buffer=c.data.shuffle_buffer,
          seed=None, repeat=True, with_oracle=c.needs_oracle)
    return tf_keras.utils.experimental.DatasetCreator(ps_train_fn)

  # With a tf.data service its workers read, decode and batch each pass.
  make = (functools.partial(service.epochs_dataset, dispatcher=c.data.service)
          if c.data.service else reader.make_epochs_dataset)

  def train_fn(context):
    return make(
        plan.data_dir, "train", plan.schema, t.batch_size,
        steps_per_epoch=plan.steps, first_epoch=initial_epoch,
        end_epoch=end_epoch, skip_steps=skip, seed=t.seed,
        shuffle_buffer=c.data.shuffle_buffer, input_context=context,
        with_oracle=c.needs_oracle)

  return strategy.distribute_datasets_from_function(train_fn)


def _build(plan: Plan, strategy, valid_input):
  """The compiled model with every variable and optimizer slot created.

  One eager validation step (no tracing) creates every variable the losses
  use, so that a step checkpoint restores all of them at once (a corrupt one
  fails here, not mid-training) and Keras traces its step functions once.
  The metrics it touches are reset when `fit` starts.
  """
  with strategy.scope():
    model = models.compile_model(
        models.build_model(plan.config, plan.schema), plan.config,
        total_steps=plan.steps * plan.config.train.epochs)
    teacher.attach(model, plan.config)
  if plan.layout.strategy == distribute.PS:
    model.evaluate(valid_input, steps=1, verbose=0)  # via the coordinator
  else:
    strategy.run(model.test_step, args=(next(iter(valid_input)),))
  with strategy.scope():
    model.optimizer.build(model.trainable_variables)
  return model


def sharding_report(model) -> list[str]:
  """'name: N shards on [ps tasks]' for each variable split across ps tasks."""
  shards: dict[str, list[str]] = {}
  for variable in model.variables:  # a ShardedVariable lists its parts
    match = re.match(r"(.*)/part_\d+(:\d+)?$", variable.name)
    if match:
      shards.setdefault(match.group(1), []).append(
          variable.device.split("/device:")[0])
  return [f"{name}: {len(devices)} shards on {sorted(set(devices))}"
          for name, devices in sorted(shards.items())]


def _callbacks(plan: Plan, sample_batch, best, step_checkpoint, extra):
  # The guard first: it raises at a NaN/Inf loss before anything saves.
  guard = cb.NonFiniteGuard(
      plan.steps, os.path.join(plan.model_dir, resume.STEPS_DIR),
      check_batches=plan.layout.strategy != distribute.PS)
  # The averaged weights (train.ema_momentum) are in the model from
  # validation until `averaged.restore`, i.e. for everything that saves or
  # reads the weights at the epoch's end except the step checkpoint.
  averaged = cb.AveragedWeights()
  callbacks = [averaged, guard, cb.EpochWeights(
      os.path.join(plan.out_dir, model_dir_lib.EPOCH_WEIGHTS_DIR))]
  if plan.chief:  # summaries need no collective: only the chief writes them
    log_dir = os.path.join(plan.model_dir, model_dir_lib.TENSORBOARD_DIR)
    # No graph: a subclassed model has none worth showing, and it costs time.
    callbacks += [tf_keras.callbacks.TensorBoard(log_dir=log_dir,
                                                 write_graph=False),
                  cb.TauHistogram(log_dir, sample_batch)]
  return callbacks + [best, averaged.restore, step_checkpoint, *extra]


@dataclasses.dataclass
class Fitted:
  """What `fit` did: final progress, best epoch (1-based), resumed step."""

  progress: resume.Progress
  best_epoch: int | None
  resumed_from: int


def _restore(plan: Plan, model, log):
  """(StepCheckpoints, Progress) restored from the chief's newest checkpoint."""
  checkpoints = resume.StepCheckpoints(
      model, os.path.join(plan.model_dir, resume.STEPS_DIR),
      os.path.join(plan.out_dir, resume.STEPS_DIR), plan.steps, log=log)
  progress = checkpoints.restore()
  epoch, done = divmod(progress.step, plan.steps)
  if epoch >= plan.config.train.epochs:
    log(f"training already complete at global step {progress.step}: "
        "reporting on the best weights")
  elif progress.step:
    log(f"resuming from the checkpoint at global step {progress.step} "
        f"(epoch {epoch + 1}, {done} of {plan.steps} steps done)")
  return checkpoints, progress


def fit(plan: Plan, strategy: tf.distribute.Strategy, verbose: int,
        log, extra_callbacks=()) -> Fitted:
  """Trains under `strategy` from the newest step checkpoint to the end.

  Each process saves the best weights to `plan.best_weights` (the chief's are
  the model directory's). `extra_callbacks` run after the job's own.
  """
  t = plan.config.train
  tf_keras.utils.set_random_seed(t.seed)
  if plan.config.runtime.deterministic:
    tf.config.experimental.enable_op_determinism()
  # One fixed validation batch for the relatedness summaries (with the
  # synthetic oracle columns when the data has them).
  sample_batch = next(iter(reader.make_dataset(
      plan.data_dir, "valid", plan.schema, t.eval_batch_size, training=False,
      with_oracle=datadir.has_oracle(plan.data_dir))))
  valid_input = _valid_input(plan, strategy)
  model = _build(plan, strategy, valid_input)
  if plan.layout.strategy == distribute.PS:
    sharded = sharding_report(model)
    log("sharded across the parameter servers: " + ("; ".join(sharded) or
        f"nothing (no variable above {plan.config.runtime.ps_min_shard_bytes} "
        "bytes)"))
  checkpoints, progress = _restore(plan, model, log)
  resumed_from = progress.step
  best = cb.BestEpoch(model.objective.checkpoint_metric(t.checkpoint_metric),
                      plan.best_weights,
                      t.early_stopping_patience)
  best.set_state(progress.best)
  asynchronous = plan.layout.strategy == distribute.PS
  every = 0 if asynchronous else t.checkpoint_every_steps
  step_checkpoint = resume.StepCheckpoint(checkpoints, progress, best, every)
  callbacks = _callbacks(plan, sample_batch, best, step_checkpoint,
                         extra_callbacks)
  if asynchronous:
    tf.random.set_seed(None)  # every worker shuffles in its own order
  for initial_epoch, end_epoch, skip in resume.fit_segments(
      progress.step, plan.steps, t.epochs):
    if best.exhausted:
      break
    train_input = _train_input(plan, strategy, initial_epoch, end_epoch, skip)
    step_checkpoint.begin_segment(initial_epoch, skip)
    model.fit(train_input, validation_data=valid_input,
              initial_epoch=initial_epoch, epochs=end_epoch,
              steps_per_epoch=plan.steps - skip,
              validation_steps=plan.validation_steps, callbacks=callbacks,
              verbose=verbose)
  return Fitted(progress, best.best_epoch, resumed_from)
