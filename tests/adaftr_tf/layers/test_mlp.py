"""Tests of adaftr_tf.layers.mlp: shapes, dropout, seeds, config, bad args."""

import numpy as np
import pytest

from adaftr_tf.layers import MLP
from tests.helpers.layers import BATCH, check_config_round_trip, inputs


# (constructor, kwargs, call kwargs) on a [BATCH, IN] input.
CASES = {
    "mlp": (MLP, dict(units=(8, 4), dropout=0.1, use_batch_norm=True, l2=1e-3,
                      seed=3), {}),
}


def test_mlp_shape():
  assert MLP((8, 4))(inputs()).shape == (BATCH, 4)


def test_mlp_dropout_only_in_training():
  layer = MLP((16,), dropout=0.5, seed=1)
  x = inputs()
  np.testing.assert_allclose(layer(x, training=False), layer(x))
  assert not np.allclose(layer(x, training=True), layer(x, training=False))


def test_mlp_same_seed_same_weights():
  a, b = MLP((4, 3), seed=5), MLP((4, 3), seed=5)
  x = inputs()
  np.testing.assert_array_equal(a(x), b(x))


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
  check_config_round_trip(*CASES[case])


@pytest.mark.parametrize("make,arg", [
    (lambda: MLP(()), "units"),
    (lambda: MLP((4, -1)), "units"),
    (lambda: MLP(4), "units"),
    (lambda: MLP((4,), activation="nope"), "activation"),
    (lambda: MLP((4,), dropout=1.0), "dropout"),
    (lambda: MLP((4,), l2=-1.0), "l2"),
    (lambda: MLP((4,), seed=-1), "seed"),
])
def test_bad_arguments_raise(make, arg):
  with pytest.raises(ValueError, match=arg):
    make()
