"""One speed measurement ("phase") of `pipelines.benchmark_speed`.

A phase is described by a plain JSON-able spec, so it can run in a fresh
process (pipelines/benchmarks/speed/worker.py) or in the caller's:

  {"phase": "input" | "fit" | "fit_cached" | "reference", "preset": str,
   "overrides": [key=value, ...], "data_dir": str, "steps": int,
   "warmup": int, "prototypes": [name, ...], "reference_batches": int}

* input:     make_dataset (TFRecord files -> parsed (features, labels)
             batches, shuffled and repeated as in training), no model.
* fit:       the real path: make_dataset -> the compiled model of
             models.compile_model -> Keras `fit` (metrics, steps_per_execution,
             jit_compile as configured).
* fit_cached: the same `fit`, on `reference_batches` pre-parsed batches
             cycled from memory: real minus the file input, reference plus
             Keras `fit` (splits the real-to-reference gap in two).
* reference: the same model's step in a minimal loop: `reference_batches`
             pre-parsed batches cycled through a `tf.function` that computes
             `model.compute_loss` under a GradientTape and applies the same
             optimizer (no Keras fit; only the metrics compute_loss updates).
* paired:    several reference steps in one process, timed in interleaved
             rounds (pipelines/benchmarks/speed/paired.py).

Every phase reports examples/s over the `steps` timed steps that follow
`warmup` untimed ones (tracing, shuffle-buffer fill), the throughput of each
timed window, and the peak resident memory of the phase.
"""

from __future__ import annotations

import itertools
import statistics
import time

import adaftr_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf
import tf_keras

from adaftr_tf import config as config_lib
from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from adaftr_tf import optimizers
from pipelines.benchmarks.speed import memory
from pipelines.benchmarks.speed import prototypes as prototypes_lib
from pipelines.data import reader
from pipelines.training import teacher as teacher_lib

PHASES = ("input", "fit", "fit_cached", "reference", "paired")


def phase_config(spec) -> config_lib.Config:
  """The validated config of a spec: preset + overrides."""
  return experiments.config_of(spec["preset"], spec.get("overrides", ()))


def _train_batches(config, schema, data_dir) -> tf.data.Dataset:
  """The training input exactly as the real path reads it (repeated)."""
  t = config.train
  return reader.make_dataset(
      data_dir, "train", schema, t.batch_size, training=True, repeat=True,
      shuffle_buffer=config.data.shuffle_buffer, seed=t.seed)


def _result(batch_size, steps, seconds, window_steps, window_seconds,
            cpu_seconds):
  """Throughput figures from the timed steps (and per timed window).

  `cpu_seconds` is the CPU time of every thread of this process over the
  timed steps: examples per CPU-second hardly depend on what other jobs on
  the machine do, examples per (wall) second do.
  """
  windows = [batch_size * n / s for n, s in zip(window_steps, window_seconds)
             if s > 0]
  return {"examples_per_s": batch_size * steps / seconds if seconds else None,
          "steps_per_s": steps / seconds if seconds else None,
          "cpu_seconds": cpu_seconds,
          "examples_per_cpu_s":
              batch_size * steps / cpu_seconds if cpu_seconds else None,
          "cpu_utilisation": cpu_seconds / seconds if seconds else None,
          "timed_steps": steps, "seconds": seconds, "batch_size": batch_size,
          "window_examples_per_s": windows,
          "median_window_examples_per_s":
              statistics.median(windows) if windows else None}


def measure_input(spec, config, schema) -> dict:
  """Parsed training batches per second through make_dataset, no model."""
  iterator = iter(_train_batches(config, schema, spec["data_dir"]))
  for _ in range(spec["warmup"]):
    next(iterator)
  times, start, cpu = [], time.perf_counter(), time.process_time()
  for _ in range(spec["steps"]):
    next(iterator)
    times.append(time.perf_counter())
  cpu = time.process_time() - cpu
  edges = [start] + times
  windows = _group(edges, max(1, spec["steps"] // 8))
  return _result(config.train.batch_size, spec["steps"], times[-1] - start,
                 *windows, cpu)


def _group(edges, size):
  """Per-step timestamps -> (steps, seconds) of consecutive groups."""
  steps, seconds = [], []
  for i in range(0, len(edges) - 1, size):
    j = min(i + size, len(edges) - 1)
    steps.append(j - i)
    seconds.append(edges[j] - edges[i])
  return steps, seconds


class _StepTimer(tf_keras.callbacks.Callback):
  """Timestamps at the end of every execution (group of steps) of `fit`.

  It does not accept tensor logs, so Keras converts the logs to NumPy after
  each execution: the timestamp is taken once the execution has finished.
  """

  def __init__(self):
    super().__init__()
    self.marks = []   # (steps done, perf_counter, process_time)

  def on_train_batch_end(self, batch, logs=None):
    self.marks.append((batch + 1, time.perf_counter(), time.process_time()))


def _build(config, schema, prototypes=(), clear_session=True):
  if clear_session:
    tf_keras.backend.clear_session()
  tf_keras.utils.set_random_seed(config.train.seed)
  return models.compile_model(
      prototypes_lib.build_model(config, schema, prototypes), config)


def _create_variables(model, batch) -> None:
  """Creates every variable (layers, metrics, optimizer slots) eagerly.

  As pipelines/training/train_lib.py does before `fit` (there with one evaluate step):
  a tf.function that creates variables on its first call is traced twice.
  """
  with tf.GradientTape():
    model.compute_loss(batch, training=True)
  model.optimizer.build(model.trainable_variables)


def _one_batch(config, schema, data_dir):
  """One training-shaped batch without filling a shuffle buffer."""
  return next(iter(reader.make_dataset(
      data_dir, "train", schema, config.train.batch_size, training=False,
      drop_remainder=True)))


def _cached_batches(config, schema, data_dir, count) -> tf.data.Dataset:
  """`count` parsed training batches, held in memory and cycled."""
  batches = list(itertools.islice(
      _train_batches(config, schema, data_dir), max(1, count)))
  dataset = tf.data.Dataset.from_tensors(batches[0])
  for batch in batches[1:]:
    dataset = dataset.concatenate(tf.data.Dataset.from_tensors(batch))
  return dataset.repeat()   # from_tensors: already in memory


def measure_fit(spec, config, schema, cached: bool = False) -> dict:
  """Keras `fit` on make_dataset (or, `cached`, on pre-parsed batches in
  memory); throughput after the warm-up steps."""
  model = _build(config, schema, spec.get("prototypes", ()))
  _create_variables(model, _one_batch(config, schema, spec["data_dir"]))
  timer = _StepTimer()
  if cached:
    dataset = _cached_batches(config, schema, spec["data_dir"],
                              spec.get("reference_batches", 4))
  else:
    dataset = _train_batches(config, schema, spec["data_dir"])
  model.fit(dataset, epochs=1, steps_per_epoch=spec["warmup"] + spec["steps"],
            verbose=0, callbacks=[timer])
  # The first mark at or after the warm-up starts the clock.
  timed = [mark for mark in timer.marks if mark[0] >= spec["warmup"]]
  if len(timed) < 2:
    raise ValueError(f"no timed execution: steps={spec['steps']} and warmup="
                     f"{spec['warmup']} must be multiples of "
                     f"steps_per_execution={config.train.steps_per_execution}")
  (n0, t0, c0), (n1, t1, c1) = timed[0], timed[-1]
  window_steps = [b[0] - a[0] for a, b in zip(timed, timed[1:])]
  window_seconds = [b[1] - a[1] for a, b in zip(timed, timed[1:])]
  result = _result(config.train.batch_size, n1 - n0, t1 - t0, window_steps,
                   window_seconds, c1 - c0)
  result["final_loss"] = float(model.loss_tracker.result())
  return result


def reference_step(config, schema, data_dir, count, prototypes=(),
                   clear_session=True):
  """(step, batches): the minimal training step and its pre-parsed batches.

  `step(batch)` computes `model.compute_loss` under a GradientTape and
  applies the model's optimizer as its train step does (`optimizers.minimize`;
  a `tf.function`, XLA if configured).
  """
  model = _build(config, schema, prototypes, clear_session)
  teacher_lib.check(config, schema)
  teacher_lib.attach(model, config)   # a no-op without loss.teacher_dir
  batches = list(itertools.islice(
      _train_batches(config, schema, data_dir), max(1, count)))
  optimizer = model.optimizer
  _create_variables(model, batches[0])

  @tf.function(jit_compile=config.runtime.jit_compile)
  def step(batch):
    with tf.GradientTape() as tape:
      loss = model.compute_loss(batch, training=True)
    optimizers.minimize(optimizer, loss, model.trainable_variables, tape)
    return loss

  return step, batches


def measure_reference(spec, config, schema) -> dict:
  """The same model and optimizer in a minimal hand-written training loop."""
  step, batches = reference_step(config, schema, spec["data_dir"],
                                 spec.get("reference_batches", 4),
                                 spec.get("prototypes", ()))
  cycle = itertools.cycle(batches)
  for _ in range(spec["warmup"]):
    loss = step(next(cycle))
  float(loss)
  times, start, cpu = [], time.perf_counter(), time.process_time()
  for _ in range(spec["steps"]):
    loss = step(next(cycle))
    times.append(time.perf_counter())
  float(loss)   # on CPU each call returns when done; this only makes sure
  times[-1] = end = time.perf_counter()
  cpu = time.process_time() - cpu
  windows = _group([start] + times, max(1, spec["steps"] // 8))
  result = _result(config.train.batch_size, spec["steps"], end - start,
                   *windows, cpu)
  result["final_loss"] = float(loss)
  result["traces"] = step.experimental_get_tracing_count()
  return result


def run_phase(spec) -> dict:
  """Runs one phase; returns its figures plus memory (MiB) and timings."""
  if spec["phase"] not in PHASES:
    raise ValueError(f"unknown phase {spec['phase']!r}; valid: {PHASES}")
  if spec["steps"] < 1 or spec["warmup"] < 1:
    raise ValueError(f"steps={spec['steps']} and warmup={spec['warmup']} "
                     "must be >= 1")
  started = time.perf_counter()
  config = phase_config(spec)
  schema = F.FeatureSchema.load(spec["data_dir"])
  prototypes_lib.check(spec.get("prototypes", ()))
  memory.reset_peak()
  rss_before = memory.current_rss_mb()
  from pipelines.benchmarks.speed import paired   # it imports this module
  measure = {"input": measure_input, "fit": measure_fit,
             "fit_cached": lambda *a: measure_fit(*a, cached=True),
             "reference": measure_reference,
             "paired": paired.measure_paired}[spec["phase"]]
  result = measure(spec, config, schema)
  result.update(
      peak_rss_mb=memory.peak_rss_mb(), rss_before_mb=rss_before,
      table_rows=sum(schema.categorical_sizes),
      wall_seconds=time.perf_counter() - started)
  return result
