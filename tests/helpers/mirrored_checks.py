"""Checks that need 2 logical CPU devices, run in a fresh process.

  python tests/helpers/mirrored_checks.py DATA_DIR MODEL_DIR

Logical devices must be configured before TensorFlow initialises, so these
checks cannot run inside the pytest process;
tests/pipelines/training/test_distribute.py runs this script once and asserts
on the JSON it prints as its last line:
  negatives:  max |diff| of loss and gradients, 2 replicas x 32 vs 1 x 64, with
              global and with local negatives (same initial weights), and
              with the gradient-agreement relatedness (per-replica agreement);
  uneven:     global InfoNCE with replica batches of 40 and 24 vs 1 x 64;
  meta_gradient: the meta-gradient relatedness signal with local negatives,
              2 replicas x 32 vs one device on each replica's 32 rows;
  reduction:  then fit (2 steps) and evaluate logs and weights, 2 replicas
              (global negatives) vs 1;
  train:      the `mirrored` training job's layout and step count;
  teacher:    a second mirrored job whose tau is that model's
              (loss.tau_source=teacher): its steps, InfoNCE and tau; the
              same with two cross-fitted mirrored teachers (train.folds);
  reader:     whether `make_epochs_dataset` (row blocks, shuffled, resumed
              after one step) gives 2 replicas the rows of one device's
              global batches, replica 0 the first half.
"""

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from pipelines.training import distribute  # noqa: E402

DEVICES = distribute.configure_cpu_devices(2)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adaftr_tf import experiments  # noqa: E402
from tests.helpers import jobs  # noqa: E402
from tests.helpers.data import PAPER_READING  # noqa: E402
from adaftr_tf import features as F  # noqa: E402
from adaftr_tf import models  # noqa: E402
from adaftr_tf import optimizers  # noqa: E402
from pipelines.data import reader  # noqa: E402
from pipelines.training import model_dir as model_dir_lib  # noqa: E402
from pipelines.training import train_lib  # noqa: E402

GLOBAL_BATCH = 64


def _config(*items):
  """The tiny preset's AdaFTR, the paper reading (in-batch negatives, whose
  cross-replica gathering these checks compare with one replica)."""
  return experiments.config_of("tiny", [
      "train.batch_size=64", "train.eval_batch_size=256",
      "train.steps_per_execution=1", *PAPER_READING, *items])


def _batches(data_dir, schema, split, batch, context=None):
  """Fixed-order, full batches: replica k gets rows [k*b, (k+1)*b) of a step."""
  return reader.make_dataset(data_dir, split, schema, batch,
                                 training=False, drop_remainder=True,
                                 input_context=context)


def _model(strategy, config, schema):
  with strategy.scope():
    model = models.build_model(config, schema)
    # Eager fit/evaluate: the same reductions, no minute-long tracing.
    model.compile(optimizer=models.build_optimizer(
        config.train.optimizer, config.train.learning_rate), run_eagerly=True)
    return model


def _gradient_function(strategy, model):
  """A tf.function: batch -> (loss, gradients) summed over the replicas."""
  def step(batch):
    with tf.GradientTape() as tape:
      loss = model.compute_loss(batch, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    return loss, [tf.convert_to_tensor(g) for g in grads]

  def run(batch):  # eager: one step costs less than tracing it
    loss, grads = strategy.run(step, args=(batch,))
    total = lambda x: strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None)
    return total(loss), [total(g) for g in grads]
  return run


def _max_diff(first, second):
  return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
             for a, b in zip(first, second))


def check_negatives(data_dir, schema, mirrored, models_out):
  """One step on the same 64 rows: 1 replica vs 2 (global / local negatives)."""
  single = tf.distribute.get_strategy()
  agreement = "loss.relatedness_signal=gradient_agreement"
  runs = {"one": (single, _config()), "global": (mirrored, _config()),
          "local": (mirrored, _config("runtime.cross_replica_negatives=false")),
          "agreement_one": (single, _config(agreement)),
          "agreement": (mirrored, _config(agreement))}
  results = {}
  for name, (strategy, config) in runs.items():
    model = _model(strategy, config, schema)
    inputs = strategy.distribute_datasets_from_function(
        lambda c: _batches(data_dir, schema, "train", GLOBAL_BATCH, c))
    batch = next(iter(inputs))
    function = _gradient_function(strategy, model)
    function(batch)  # creates the variables
    first = {"global": "one", "local": "one",
             "agreement": "agreement_one"}.get(name)
    if first is not None:   # the same initial weights as one device
      model.set_weights(models_out[first].get_weights())
    loss, grads = function(batch)
    models_out[name] = model
    results[name] = (float(loss), [g.numpy() for g in grads])
  report = {}
  for key, first in (("global", "one"), ("local", "one"),
                     ("agreement", "agreement_one")):
    loss1, grads1 = results[first]
    report[key] = {"loss": [loss1, results[key][0]],
                   "loss_diff": abs(loss1 - results[key][0]),
                   "grad_diff": _max_diff(grads1, results[key][1]),
                   "grad_scale": max(float(np.max(np.abs(g))) for g in grads1),
                   "num_gradients": len(grads1)}
  return report


def check_uneven(data_dir, schema, mirrored, models_out):
  """Global in-batch InfoNCE with replica batches of 40 and 24 rows: the
  per-example losses equal one device's on all 64 rows."""
  del data_dir, schema, models_out
  from adaftr_tf.tasks import ContrastiveTask
  rng = np.random.default_rng(0)
  u = tf.math.l2_normalize(tf.constant(rng.normal(size=(64, 8)), tf.float32), -1)
  v = tf.math.l2_normalize(tf.constant(rng.normal(size=(64, 8)), tf.float32), -1)
  tau = tf.constant(rng.uniform(0.1, 1.0, size=64), tf.float32)
  one = ContrastiveTask(name="one")(u, v, tau).numpy()
  bounds = [(0, 40), (40, 64)]

  def rows(context):
    start, end = bounds[context.replica_id_in_sync_group]
    return u[start:end], v[start:end], tau[start:end]

  with mirrored.scope():
    task = ContrastiveTask(name="two")
  per_replica = mirrored.experimental_distribute_values_from_function(rows)
  losses = mirrored.run(lambda args: task(*args), args=(per_replica,))
  two = np.concatenate([t.numpy() for t in
                        mirrored.experimental_local_results(losses)])
  return {"sizes": [len(t.numpy()) for t in
                    mirrored.experimental_local_results(losses)],
          "loss_diff": float(np.max(np.abs(one - two)))}


def check_meta_gradient(data_dir, schema, mirrored, models_out):
  """relatedness_signal=meta_gradient with local negatives: each replica's
  loss (its meta and alignment halves, its InfoNCE) is its own rows', so 2
  replicas x 32 give the mean of one device's loss and gradients on rows
  [0, 32) and [32, 64); the relatedness network's gradient is not zero."""
  del models_out
  config = _config("loss.relatedness_signal=meta_gradient",
                   "runtime.cross_replica_negatives=false")
  single = tf.distribute.get_strategy()
  one = _model(single, config, schema)
  halves = iter(_batches(data_dir, schema, "train", GLOBAL_BATCH // 2))
  first, second = next(halves), next(halves)
  on_one = _gradient_function(single, one)
  on_one(first)  # creates the variables
  two = _model(mirrored, config, schema)
  inputs = mirrored.distribute_datasets_from_function(
      lambda c: _batches(data_dir, schema, "train", GLOBAL_BATCH, c))
  batch = next(iter(inputs))
  on_two = _gradient_function(mirrored, two)
  on_two(batch)
  two.set_weights(one.get_weights())
  loss2, grads2 = on_two(batch)
  (loss_a, grads_a), (loss_b, grads_b) = on_one(first), on_one(second)
  loss1 = 0.5 * (float(loss_a) + float(loss_b))
  grads1 = [0.5 * (a.numpy() + b.numpy()) for a, b in zip(grads_a, grads_b)]
  phi = {id(v) for v in two.alignment_task.alignment.relatedness
         .trainable_variables}
  return {"loss": [loss1, float(loss2)], "loss_diff": abs(loss1 - float(loss2)),
          "grad_diff": _max_diff(grads1, [g.numpy() for g in grads2]),
          "grad_scale": max(float(np.max(np.abs(g))) for g in grads1),
          "relatedness_grad": max(
              float(np.max(np.abs(g.numpy())))
              for g, v in zip(grads2, two.trainable_variables)
              if id(v) in phi)}


def check_reduction(data_dir, schema, mirrored, models_out):
  """fit (2 steps) and evaluate logs and weights: 1 replica vs 2."""
  logs = {}
  for name, strategy in (("one", tf.distribute.get_strategy()),
                         ("global", mirrored)):
    model = models_out[name]
    train = strategy.distribute_datasets_from_function(
        lambda c: _batches(data_dir, schema, "train", GLOBAL_BATCH, c))
    valid = strategy.distribute_datasets_from_function(
        lambda c: _batches(data_dir, schema, "valid", 256, c))
    history = model.fit(train, epochs=1, steps_per_epoch=2, verbose=0)
    evaluated = model.evaluate(valid, steps=2, verbose=0, return_dict=True)
    logs[name] = ({k: v[-1] for k, v in history.history.items()}, evaluated)
  (fit1, eval1), (fit2, eval2) = logs["one"], logs["global"]
  return {
      "fit_logs": [fit1, fit2], "evaluate_logs": [eval1, eval2],
      "fit_diff": max(abs(fit1[k] - fit2[k]) for k in fit1),
      "evaluate_diff": max(abs(eval1[k] - eval2[k]) for k in eval1),
      "weight_diff": _max_diff(models_out["one"].trainable_variables,
                               models_out["global"].trainable_variables)}


def check_training(data_dir, model_dir, mirrored):
  # LazyAdam: its row scatters must also run on mirrored variables; so must
  # the moving average's swaps (train.ema_momentum).
  config = _config("train.steps_per_epoch=4", "train.steps_per_execution=2",
                   "train.checkpoint_every_steps=2", "train.optimizer=lazy_adam",
                   "train.ema_momentum=0.9")
  sparse_variables = set()
  update_step = optimizers.LazyAdam.update_step

  def recording_update_step(self, gradient, variable):
    if isinstance(gradient, tf.IndexedSlices):
      sparse_variables.add(variable.name)
    return update_step(self, gradient, variable)

  optimizers.LazyAdam.update_step = recording_update_step
  try:
    result = train_lib.train(config, model_dir, data_dir, verbose=0,
                            strategy=mirrored)
  finally:
    optimizers.LazyAdam.update_step = update_step
  return {"layout": result["layout"], "global_step": result["global_step"],
          "ctr_auc": result["valid"]["ctr_auc"],
          "lazy_sparse_updates": sorted(sparse_variables)}


def check_teacher(data_dir, model_dir, mirrored):
  """A mirrored student of the `train` check's model (the teacher, restored
  under the strategy's scope and called in each replica)."""
  config = _config("train.steps_per_epoch=2", "loss.tau_source=teacher",
                   f"loss.teacher_dir={model_dir}", "loss.tau_min=0.2")
  student_dir = model_dir + "_student"
  result = train_lib.train(config, student_dir, data_dir, verbose=0,
                           strategy=mirrored)
  with open(os.path.join(student_dir, "history.json")) as f:
    history = json.load(f)
  # Cross-fitted: fold 0's teacher trained mirrored without its fold's rows,
  # fold 1's the `train` check's model marked held out (one mirrored job
  # with folds is enough), then a student reading both (each replica's rows
  # by their folds).
  folds = [f"{model_dir}_fold0", f"{model_dir}_fold1"]
  train_lib.train(_config("train.steps_per_epoch=2", "train.folds=2",
                          "train.holdout_fold=0"), folds[0], data_dir,
                  verbose=0, strategy=mirrored)
  jobs.copy_run_with(model_dir, folds[1], model_dir_lib.CONFIG_FILE,
                     lambda c: c["train"].update(folds=2, holdout_fold=1))
  crossfit = train_lib.train(
      _config("train.steps_per_epoch=2", "loss.tau_source=teacher",
              f"loss.teacher_dir={','.join(folds)}", "loss.tau_min=0.2"),
      model_dir + "_crossfit", data_dir, verbose=0, strategy=mirrored)
  with open(os.path.join(model_dir + "_crossfit", "history.json")) as f:
    crossfit_history = json.load(f)
  return {"global_step": result["global_step"],
          "cl_loss": history["cl_loss"][0], "tau_mean": history["tau_mean"][0],
          "crossfit_step": crossfit["global_step"],
          "crossfit_cl_loss": crossfit_history["cl_loss"][0],
          "crossfit_tau_mean": crossfit_history["tau_mean"][0]}


def check_reader(data_dir, schema, mirrored, models_out):
  """Training batches of 2 replicas, concatenated, vs one device's."""
  del models_out
  def epochs(context=None):
    return reader.make_epochs_dataset(
        data_dir, "train", schema, GLOBAL_BATCH, steps_per_epoch=6,
        first_epoch=0, end_epoch=2, skip_steps=1, seed=5,
        shuffle_buffer=1024, input_context=context, with_oracle=True)
  one = [np.concatenate([b[0][k].numpy() for k in sorted(b[0])]
                        + [b[2][F.ORACLE_P_CLICK].numpy()]) for b in epochs()]
  two = []
  for batch in mirrored.distribute_datasets_from_function(epochs):
    parts = [[r.numpy() for r in mirrored.experimental_local_results(t)]
             for t in [batch[0][k] for k in sorted(batch[0])]
             + [batch[2][F.ORACLE_P_CLICK]]]
    two.append(np.concatenate([np.concatenate(p) for p in parts]))
  return {"steps": [len(one), len(two)],
          "replica_rows": [len(p) for p in parts[0]],
          "equal": len(one) == len(two) and all(
              np.array_equal(a, b) for a, b in zip(one, two))}


def main(data_dir, model_dir):
  schema = F.FeatureSchema.load(data_dir)
  mirrored = distribute.make_strategy("mirrored")
  report = {"devices": DEVICES, "replicas": mirrored.num_replicas_in_sync}
  timings = report["seconds"] = {}
  models_out = {}
  for name, check in (("negatives", check_negatives),
                      ("uneven", check_uneven),
                      ("meta_gradient", check_meta_gradient),
                      ("reduction", check_reduction),
                      ("reader", check_reader),
                      ("train", check_training),
                      ("teacher", check_teacher)):
    start = time.time()
    if name in ("train", "teacher"):
      report[name] = check(data_dir, model_dir, mirrored)
    else:
      report[name] = check(data_dir, schema, mirrored, models_out)
    timings[name] = round(time.time() - start, 1)
  print(json.dumps(report, default=float))


if __name__ == "__main__":
  main(*sys.argv[1:3])
