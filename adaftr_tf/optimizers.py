"""Optimizers: `build_optimizer(config)` and LazyAdam for large embedding tables.

Dense Adam (tf_keras) decays both moment slots of every row of every variable
on every step, so its cost grows with the vocabulary, not the batch. LazyAdam
updates only the rows a sparse (`IndexedSlices`) gradient touches, like TF1's
`LazyAdamOptimizer`; Adagrad is sparse-friendly by construction. `minimize`
applies one step of any of them (the models' train step).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras

from adaftr_tf import choices
from adaftr_tf import xla


class LazyAdam(tf_keras.optimizers.Adam):
  """Adam whose sparse updates touch only the rows present in the gradient.

  For an `IndexedSlices` gradient g on rows R (`[r]` indices, `[r, d]`
  values, deduplicated by the base optimizer):
    m[R] = b1 m[R] + (1 - b1) g,   v[R] = b2 v[R] + (1 - b2) g^2,
    w[R] -= alpha_t m[R] / (sqrt(v[R]) + eps),
    alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t).
  Other rows and their slots are left alone (their moments are not decayed:
  the "lazy" approximation). Dense gradients take the ordinary Adam update.
  Same slot variables as Adam, so checkpoints are interchangeable.
  """

  def update_step(self, gradient, variable):
    if not isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable)
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    alpha = (tf.cast(self.learning_rate, dtype)
             * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step)))
    index = self._index_dict[self._var_key(variable)]
    m, v = self._momentums[index], self._velocities[index]
    rows, values = gradient.indices, gradient.values
    m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
    v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
    m.scatter_update(tf.IndexedSlices(m_rows, rows))
    v.scatter_update(tf.IndexedSlices(v_rows, rows))
    variable.scatter_sub(tf.IndexedSlices(
        alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def learning_rate_schedule(learning_rate: float, schedule: str = "constant",
                           total_steps: int | None = None,
                           warmup_fraction: float = 0.05):
  """The learning rate: `learning_rate` itself (`constant`), or for
  `warmup_cosine` a linear warm-up from 0 over the first `warmup_fraction`
  of `total_steps` to `learning_rate`, then a cosine decay to 0 at
  `total_steps` (a function of the optimizer step: exact on resume)."""
  choices.check("train.lr_schedule", schedule, choices.LearningRateSchedule)
  if schedule == "constant":
    return learning_rate
  if not total_steps or total_steps < 1:
    raise ValueError(f"train.lr_schedule={schedule} needs the number of "
                     f"training steps, got {total_steps}")
  warmup = int(round(warmup_fraction * total_steps))
  return tf_keras.optimizers.schedules.CosineDecay(
      0.0, max(total_steps - warmup, 1), warmup_target=learning_rate,
      warmup_steps=warmup)


class _ZeroDebiasedAverage:
  """The moving average of tf-keras's `use_ema`, started from zero instead
  of the initial weights, and left out of the weights when `fit` ends.

  tf-keras starts the average at the initial weights, so after t steps
  `m^t` of it is still the initialisation (after 390 steps at m = 0.99, 2%:
  enough to pull an output bias towards the initial 50% rate). Started from
  zero, `averaged_weights` divides by `1 - m^t` (Adam's bias correction),
  an average of the trained weights alone. tf-keras would also overwrite
  the weights with the raw average when `fit` ends: the training job swaps
  the averages in for validation and the saved epochs itself
  (pipelines/training/callbacks.py `AveragedWeights`), and a resumed job
  must continue from the trained weights.
  """

  def build(self, var_list):
    first = not getattr(self, "_built", False)
    super().build(var_list)
    if first and self.use_ema:
      with tf.init_scope():   # once, eagerly, even when built while tracing
        for average in self._model_variables_moving_average:
          average.assign(tf.zeros_like(average))

  def finalize_variable_values(self, var_list):
    del var_list


_CLASSES = {"adam": tf_keras.optimizers.Adam, "lazy_adam": LazyAdam,
            "adagrad": tf_keras.optimizers.Adagrad}
_AVERAGING_CLASSES = {
    name: type(f"Averaging{cls.__name__}", (_ZeroDebiasedAverage, cls), {})
    for name, cls in _CLASSES.items()}


def build_optimizer(name: str, learning_rate, ema_momentum: float = 0.0,
                    ) -> tf_keras.optimizers.Optimizer:
  """The optimizer `name` (one of `choices.Optimizer`) at `learning_rate`
  (a float or a `learning_rate_schedule`).

  `ema_momentum` > 0 also keeps an exponential moving average of every
  trainable variable (`slot = m slot + (1 - m) w` after each step from a
  zero slot; the average is `slot / average_debias`; one more copy of every
  variable, updated densely on every step, embedding tables included);
  `averaged_pairs` reads the slots.
  """
  choices.check("optimizer", name, choices.Optimizer)
  if not 0.0 <= ema_momentum < 1.0:
    raise ValueError(f"ema_momentum={ema_momentum} must lie in [0, 1)")
  if not ema_momentum:
    return _CLASSES[name](learning_rate)
  return _AVERAGING_CLASSES[name](
      learning_rate, use_ema=True, ema_momentum=ema_momentum,
      ema_overwrite_frequency=None)


def unwrapped(optimizer: tf_keras.optimizers.Optimizer
              ) -> tf_keras.optimizers.Optimizer:
  """The optimizer itself, or the one a LossScaleOptimizer (mixed_float16)
  wraps: what holds the update rule, its slots and its moving averages."""
  return getattr(optimizer, "inner_optimizer", optimizer)


def averaged_pairs(optimizer: tf_keras.optimizers.Optimizer, variables
                   ) -> list[tuple[tf.Variable, tf.Variable]]:
  """(variable, its moving-average slot) for each of `variables`, or [] when
  the optimizer keeps no averages. The optimizer must be built on them."""
  inner = unwrapped(optimizer)
  if not getattr(inner, "use_ema", False):
    return []
  averages = inner._model_variables_moving_average  # pylint: disable=protected-access
  return [(v, averages[inner._index_dict[inner._var_key(v)]])  # pylint: disable=protected-access
          for v in variables]


def average_debias(optimizer: tf_keras.optimizers.Optimizer) -> float:
  """`1 - m^t` after t steps: the slot divided by it is the average of the
  trained weights (0.0 before the first step: no average yet)."""
  inner = unwrapped(optimizer)
  steps = int(inner.iterations.numpy())
  return 1.0 - float(inner.ema_momentum) ** steps


# Above this many rows, dense Adam's every-row update dominates the step.
LARGE_TABLE_ROWS = 1_000_000


def dense_table_warning(optimizer: str, table_rows: dict[str, int]
                        ) -> str | None:
  """One line when dense `adam` meets an embedding table of more than
  LARGE_TABLE_ROWS rows (`table_rows`: field -> rows), else None."""
  if optimizer != "adam" or not table_rows:
    return None
  field, rows = max(table_rows.items(), key=lambda item: item[1])
  if rows <= LARGE_TABLE_ROWS:
    return None
  return (f"warning: train.optimizer=adam updates all {rows:,} rows of the "
          f"{field} embedding table (and its two moment slots) on every step; "
          "train.optimizer=lazy_adam updates only the batch's rows (README, "
          "Performance)")


def minimize(optimizer: tf_keras.optimizers.Optimizer, loss: tf.Tensor,
             variables: Sequence[tf.Variable], tape: tf.GradientTape) -> None:
  """`optimizer.minimize(loss, variables, tape=tape)` (a LossScaleOptimizer
  scales the loss and unscales the gradients), except that inside an
  XLA-compiled step the sparse `IndexedSlices` gradients (the embedding
  tables') reach Adam and Adagrad as dense tensors. Their sparse update equals
  their dense one (a row without gradient keeps its weight; Adam decays every
  row's moments either way), but the optimizer first deduplicates the sparse
  rows with `tf.unique`, which XLA compiles to sorts and a while loop, and
  scatters the updates: about half of an XLA step on CPU (issue 16). LazyAdam,
  whose sparse update differs, keeps them. (The moving averages of
  `train.ema_momentum` are updated densely either way.)"""
  grads_and_vars = optimizer.compute_gradients(loss, variables, tape)
  inner = unwrapped(optimizer)
  if xla.in_xla_context() and isinstance(
      inner, (tf_keras.optimizers.Adam, tf_keras.optimizers.Adagrad)) and (
          not isinstance(inner, LazyAdam)):
    grads_and_vars = [
        (tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g, v)
        for g, v in grads_and_vars]
  optimizer.apply_gradients(grads_and_vars)
