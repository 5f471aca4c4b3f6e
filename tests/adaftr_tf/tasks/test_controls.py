"""Tests of adaftr_tf/tasks/controls.py: tau from the planted relatedness or
a field hash, against direct computations."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.tasks import controls

TAU_MIN, TAU_MAX = 0.05, 1.0
R = np.array([0.0, 0.25, 0.5, 1.0, 0.9, 0.1], np.float32)
ORACLE = {F.ORACLE_RELATEDNESS: tf.constant(R)}


def _tau(source, seed=(1, 7), features=None, oracle=ORACLE):
  return controls.control_tau(source, TAU_MIN, TAU_MAX, features, oracle,
                              "categorical_1", seed=tf.constant(seed,
                                                                tf.int64)
                              ).numpy()


def test_oracle_and_anti_oracle_map_r_to_the_bounds():
  np.testing.assert_allclose(_tau("oracle"), TAU_MAX - (TAU_MAX - TAU_MIN) * R,
                             rtol=1e-6)
  np.testing.assert_allclose(_tau("anti_oracle"),
                             TAU_MIN + (TAU_MAX - TAU_MIN) * R, rtol=1e-6)
  assert _tau("oracle")[3] == pytest.approx(TAU_MIN)   # r = 1: strongest


def test_shuffled_oracle_permutes_the_oracle_values_per_seed():
  oracle = _tau("oracle")
  shuffled = _tau("shuffled_oracle", seed=(1, 7))
  np.testing.assert_allclose(np.sort(shuffled), np.sort(oracle), rtol=1e-6)
  assert not np.allclose(shuffled, oracle)
  np.testing.assert_array_equal(shuffled, _tau("shuffled_oracle", seed=(1, 7)))
  others = [_tau("shuffled_oracle", seed=(1, s)) for s in range(8, 12)]
  assert any(not np.array_equal(shuffled, o) for o in others)


def test_field_hash_is_knuths_multiplicative_hash_of_the_id():
  ids = np.array([0, 1, 2, 3, 99, 1, 123456789], np.int64)
  u = ((ids * 2654435761) % 2 ** 32) / 2 ** 32
  np.testing.assert_allclose(controls.field_hash(tf.constant(ids)).numpy(), u,
                             rtol=1e-6)
  tau = _tau("field_hash", features={"categorical_1": tf.constant(ids)},
             oracle=None)
  np.testing.assert_allclose(tau, TAU_MIN + (TAU_MAX - TAU_MIN) * u, rtol=1e-6)
  assert tau[1] == tau[5]   # the same id, the same tau
  assert np.all((tau >= TAU_MIN) & (tau < TAU_MAX))


def test_noisy_oracle_mixes_the_field_hash_into_r():
  ids = np.array([0, 1, 2, 3, 99, 1], np.int64)
  features = {"categorical_1": tf.constant(ids)}
  u = ((ids * 2654435761) % 2 ** 32) / 2 ** 32
  for noise in (0.0, 0.3, 1.0):
    tau = controls.control_tau("noisy_oracle", TAU_MIN, TAU_MAX, features,
                               ORACLE, "categorical_1",
                               seed=tf.constant((1, 7), tf.int64), noise=noise)
    mixed = (1 - noise) * R + noise * u
    np.testing.assert_allclose(tau.numpy(),
                               TAU_MAX - (TAU_MAX - TAU_MIN) * mixed,
                               rtol=1e-5)
  with pytest.raises(ValueError, match="noisy_oracle needs the feature"):
    _tau("noisy_oracle", features={})


def test_missing_inputs_are_named():
  with pytest.raises(ValueError, match="needs the oracle columns"):
    _tau("oracle", oracle=None)
  with pytest.raises(ValueError, match="needs the feature categorical_1"):
    _tau("field_hash", features={}, oracle=None)
