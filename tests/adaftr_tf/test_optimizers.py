"""build_optimizer and LazyAdam (sparse rows only)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from adaftr_tf import overrides

from adaftr_tf import experiments
from adaftr_tf import optimizers


@pytest.mark.parametrize("name, cls", [("adam", tf_keras.optimizers.Adam),
                                       ("lazy_adam", optimizers.LazyAdam),
                                       ("adagrad", tf_keras.optimizers.Adagrad)])
def test_build_optimizer_each_choice(name, cls):
  optimizer = optimizers.build_optimizer(name, 0.05)
  assert type(optimizer) is cls
  assert float(optimizer.learning_rate) == pytest.approx(0.05)


def test_unknown_optimizer_is_refused_naming_the_choices():
  with pytest.raises(ValueError, match=r"optimizer='sgd' is not valid; choose "
                     r"one of \('adam', 'lazy_adam', 'adagrad'\)"):
    optimizers.build_optimizer("sgd", 0.1)
  with pytest.raises(ValueError, match="train.optimizer"):
    overrides.apply(experiments.get_preset("tiny"), ["train.optimizer=sgd"])


def _sparse(values, rows, shape=(5, 2)):
  return tf.IndexedSlices(tf.constant(values, tf.float32),
                          tf.constant(rows), tf.constant(shape))


def test_lazy_adam_updates_only_the_rows_in_the_batch():
  table = tf.Variable(np.ones((5, 2), np.float32))
  other = tf.Variable(np.ones((5, 2), np.float32))
  lazy, dense = optimizers.LazyAdam(0.1), tf_keras.optimizers.Adam(0.1)
  grad = _sparse([[1.0, -2.0]], [3])
  lazy.apply_gradients([(grad, table)])
  dense.apply_gradients([(grad, other)])
  # First step: identical on row 3, untouched elsewhere (dense Adam's other
  # rows get a zero update only because their moments are still zero).
  np.testing.assert_allclose(table.numpy(), other.numpy(), rtol=1e-6)
  lazy.apply_gradients([(_sparse([[1.0, 1.0]], [0]), table)])
  np.testing.assert_allclose(table.numpy()[3], other.numpy()[3], rtol=1e-6)
  assert np.all(table.numpy()[[1, 2, 4]] == 1.0)
  assert not np.allclose(table.numpy()[0], 1.0)


def test_lazy_adam_matches_a_numpy_lazy_adam_over_steps():
  """Two steps on overlapping rows, with a duplicated index, vs NumPy."""
  lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
  table = tf.Variable(np.zeros((5, 2), np.float32))
  lazy = optimizers.LazyAdam(lr, beta_1=b1, beta_2=b2, epsilon=eps)
  w, m, v = np.zeros((5, 2)), np.zeros((5, 2)), np.zeros((5, 2))
  steps = [([[1.0, -2.0], [0.5, 0.5], [1.0, 1.0]], [3, 1, 3]),
           ([[2.0, 0.0]], [1])]
  for t, (values, rows) in enumerate(steps, start=1):
    lazy.apply_gradients([(_sparse(values, rows), table)])
    g = np.zeros((5, 2))
    np.add.at(g, rows, np.array(values))   # duplicates are summed
    touched = sorted(set(rows))
    m[touched] = b1 * m[touched] + (1 - b1) * g[touched]
    v[touched] = b2 * v[touched] + (1 - b2) * g[touched] ** 2
    alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    w[touched] -= alpha * m[touched] / (np.sqrt(v[touched]) + eps)
  np.testing.assert_allclose(table.numpy(), w, rtol=1e-5, atol=1e-6)


def test_lazy_adam_dense_gradients_take_the_adam_update():
  a = tf.Variable(np.ones((3,), np.float32))
  b = tf.Variable(np.ones((3,), np.float32))
  grad = tf.constant([0.5, -1.0, 2.0])
  lazy, adam = optimizers.LazyAdam(0.1), tf_keras.optimizers.Adam(0.1)
  for _ in range(3):
    lazy.apply_gradients([(grad, a)])
    adam.apply_gradients([(grad, b)])
  np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_adam_checkpoint_restores_into_lazy_adam(tmp_path):
  """Same slot variables: an Adam checkpoint resumes under LazyAdam."""
  table = tf.Variable(np.ones((5, 2), np.float32))
  adam = tf_keras.optimizers.Adam(0.1)
  adam.apply_gradients([(_sparse([[1.0, -2.0]], [3]), table)])
  path = tf.train.Checkpoint(optimizer=adam, table=table).save(
      str(tmp_path / "ckpt"))
  restored = tf.Variable(np.zeros((5, 2), np.float32))
  lazy = optimizers.LazyAdam(0.1)
  lazy.build([restored])
  tf.train.Checkpoint(optimizer=lazy, table=restored).restore(
      path).assert_consumed()
  assert int(lazy.iterations) == 1
  for a, b in zip(adam.variables(), lazy.variables()):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_warmup_cosine_schedule_rises_then_decays_to_zero():
  schedule = optimizers.learning_rate_schedule(0.01, "warmup_cosine", 200,
                                               warmup_fraction=0.1)
  rates = [float(schedule(step)) for step in (0, 10, 20, 110, 200)]
  assert rates[0] == pytest.approx(0.0)
  assert rates[1] == pytest.approx(0.005)             # halfway up
  assert rates[2] == pytest.approx(0.01)              # the peak
  assert rates[3] == pytest.approx(0.005, rel=1e-3)   # halfway down
  assert rates[4] == pytest.approx(0.0, abs=1e-9)
  assert optimizers.learning_rate_schedule(0.01) == 0.01
  with pytest.raises(ValueError, match="needs the number of training steps"):
    optimizers.learning_rate_schedule(0.01, "warmup_cosine", None)
  with pytest.raises(ValueError, match="train.lr_schedule='step' is not"):
    optimizers.learning_rate_schedule(0.01, "step", 10)


@pytest.mark.parametrize("name", ["adam", "lazy_adam"])
def test_a_compiled_model_follows_the_schedule(name):
  from adaftr_tf import models
  from tests.helpers.data import in_memory_dataset
  from tests.helpers.data import synthetic_columns
  from tests.helpers.data import tiny_config
  config = tiny_config("model.name=multitask", f"train.optimizer={name}",
                       "train.lr_schedule=warmup_cosine",
                       "train.warmup_fraction=0.5", "train.steps_per_execution=1")
  columns, schema = synthetic_columns(config, 256)
  model = models.compile_model(models.build_model(config, schema), config,
                               total_steps=8)
  dataset = in_memory_dataset(columns, schema, 64, training=True)
  model.fit(dataset.take(2), epochs=1, verbose=0)
  # The rate of the last step taken (step index 1 of a 4-step rise).
  assert float(model.optimizer.learning_rate) == pytest.approx(
      0.25 * config.train.learning_rate, rel=1e-5)
  with pytest.raises(ValueError, match="needs the number of training steps"):
    models.compile_model(models.build_model(config, schema), config)


def test_dense_adam_on_a_large_table_gets_a_one_line_warning():
  rows = {"user": 5_000_000, "item": 20_000}
  warning = optimizers.dense_table_warning("adam", rows)
  assert warning.startswith("warning: train.optimizer=adam updates all "
                            "5,000,000 rows of the user embedding table")
  assert "\n" not in warning and "lazy_adam" in warning
  assert optimizers.dense_table_warning("lazy_adam", rows) is None
  assert optimizers.dense_table_warning("adam", {"item": 20_000}) is None
  assert optimizers.dense_table_warning("adam", {}) is None


def test_the_real_data_presets_use_a_sparse_optimizer():
  for name in ("aliexpress", "aliccp"):
    assert experiments.get_preset(name).train.optimizer == "lazy_adam"


# The averaging mixin is the same class for every optimizer (Adagrad too).
@pytest.mark.parametrize("name", ["adam", "lazy_adam"])
def test_the_moving_average_follows_its_formula_and_fit_keeps_the_weights(
    name):
  """slot_t = m slot_{t-1} + (1 - m) w_t from a zero slot (once, though
  the optimizer is built while tracing), so slot_t / (1 - m^t) averages the
  trained weights alone; `fit`'s end leaves the trained weights in the model
  (tf-keras would overwrite them with the raw slots there)."""
  from adaftr_tf import models
  from tests.helpers.data import in_memory_dataset
  from tests.helpers.data import synthetic_columns
  from tests.helpers.data import tiny_config
  config = tiny_config("model.name=multitask", f"train.optimizer={name}",
                       "train.ema_momentum=0.6", "train.steps_per_execution=1")
  columns, schema = synthetic_columns(config, 256)
  model = models.compile_model(models.build_model(config, schema), config)
  dataset = in_memory_dataset(columns, schema, 64, training=True)
  model.fit(dataset.take(1), epochs=1, verbose=0)   # builds; one step
  assert optimizers.average_debias(model.optimizer) == pytest.approx(0.4)
  for variable, average in optimizers.averaged_pairs(
      model.optimizer, model.trainable_variables):   # one step: w_1 itself
    np.testing.assert_allclose(average.numpy() / 0.4, variable.numpy(),
                               rtol=1e-5, atol=1e-7, err_msg=variable.name)
  before = {v.name: (v.numpy(), a.numpy()) for v, a in optimizers.averaged_pairs(
      model.optimizer, model.trainable_variables)}
  model.fit(dataset.take(1), epochs=1, verbose=0)
  pairs = optimizers.averaged_pairs(model.optimizer, model.trainable_variables)
  assert len(pairs) == len(model.trainable_variables) > 5
  changed = 0
  for variable, average in pairs:
    _, old_average = before[variable.name]
    np.testing.assert_allclose(
        average.numpy(), 0.6 * old_average + 0.4 * variable.numpy(),
        rtol=1e-5, atol=1e-7, err_msg=variable.name)
    changed += not np.allclose(variable.numpy(), average.numpy())
  assert changed > 5   # the model holds its trained weights, not averages


def test_no_moving_average_by_default_and_a_bad_momentum_is_refused():
  assert optimizers.averaged_pairs(
      optimizers.build_optimizer("adam", 0.1), []) == []
  with pytest.raises(ValueError, match=r"ema_momentum=1.0 must lie in \[0, 1\)"):
    optimizers.build_optimizer("adam", 0.1, ema_momentum=1.0)
  from tests.helpers.data import tiny_config
  from adaftr_tf.config import ConfigError
  with pytest.raises(ConfigError, match=r"train.ema_momentum=-0.1 must lie"):
    tiny_config("train.ema_momentum=-0.1").validate()
