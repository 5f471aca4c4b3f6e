"""Layer-test inputs and the `get_config` round trip every layer must pass."""

import numpy as np
import tensorflow as tf


BATCH, IN = 5, 7


def inputs(seed=0, scale=1.0):
  """A [BATCH, IN] float32 input, seeded."""
  return tf.constant(
      np.random.default_rng(seed).normal(size=(BATCH, IN)) * scale, tf.float32)


def flat(out):
  """Flattens nested outputs (tuples / lists) into a list of numpy arrays."""
  if isinstance(out, (list, tuple)):
    return [a for o in out for a in flat(o)]
  return [out.numpy()]


def check_config_round_trip(cls, kwargs, call_kwargs):
  """`cls(**kwargs)` -> get_config -> from_config: same config, same outputs
  on a [BATCH, IN] input with the same weights."""
  layer = cls(**kwargs)
  data = inputs()
  out = layer(data, **call_kwargs)
  config = layer.get_config()
  clone = cls.from_config(config)
  assert clone.get_config() == config
  clone(data, **call_kwargs)
  clone.set_weights(layer.get_weights())
  for a, b in zip(flat(out), flat(clone(data, **call_kwargs))):
    np.testing.assert_array_equal(a, b)
