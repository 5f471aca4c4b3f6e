"""Export-test helpers: a validation policy without floors, tf.Example bytes."""

import tensorflow as tf

from export import validation


NO_FLOORS = validation.Policy(min_auc={})  # the tiny model's AUCs are ~0.5


def example(**values):
  """A tf.Example; int -> int64_list, float -> float_list, bytes -> bytes_list."""
  example = tf.train.Example()
  for key, vals in values.items():
    vals = vals if isinstance(vals, list) else [vals]
    feature = example.features.feature[key]
    if isinstance(vals[0], float):
      feature.float_list.value.extend(vals)
    elif isinstance(vals[0], bytes):
      feature.bytes_list.value.extend(vals)
    else:
      feature.int64_list.value.extend(vals)
  return example.SerializeToString()
