"""Control temperatures: tau set from the planted relatedness, or from a
field, instead of the relatedness network (training-only experiments).

With r `[batch]` the planted relatedness of the synthetic world (oracle
column `_oracle_relatedness`, in [0, 1]) and bounds [tau_min, tau_max]:
  oracle           tau = tau_max - (tau_max - tau_min) r   (strong alignment,
                   small tau, where related)
  anti_oracle      tau = tau_min + (tau_max - tau_min) r   (the reverse)
  shuffled_oracle  the oracle's values permuted within the batch (same
                   values, no link to the instance)
  field_hash       tau = tau_min + (tau_max - tau_min) u, u in [0, 1) a fixed
                   multiplicative hash of one categorical field's raw id (a
                   consistent per-instance tau unrelated to r when the field
                   does not enter r)
  noisy_oracle     the oracle of r' = (1 - noise) r + noise u, u the field
                   hash: a consistent per-instance tau that knows r only
                   partly (noise 0: the oracle; 1: field_hash reversed)
None of them has a trainable variable or reaches a prediction.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from adaftr_tf import features as F

# Knuth's multiplicative hash: id * 2654435761 mod 2^32, scaled to [0, 1).
_HASH_MULTIPLIER = 2654435761
_HASH_MODULUS = 2 ** 32


def field_hash(ids: tf.Tensor) -> tf.Tensor:
  """u `[batch]` float32 in [0, 1) from integer ids `[batch]`."""
  ids = tf.cast(tf.reshape(ids, [-1]), tf.int64)
  hashed = tf.math.floormod(ids * _HASH_MULTIPLIER, _HASH_MODULUS)
  return tf.cast(hashed, tf.float32) / float(_HASH_MODULUS)


def control_tau(source: str, tau_min: float, tau_max: float,
                features: Mapping[str, tf.Tensor] | None,
                oracle: Mapping[str, tf.Tensor] | None, field: str,
                seed: tuple, noise: float = 0.5) -> tf.Tensor:
  """tau `[batch]` float32 of a control source (see the module docstring).

  Raises:
    ValueError: the source needs the oracle columns (or the features) and
      the batch has none.
  """
  span = tau_max - tau_min
  if source in ("field_hash", "noisy_oracle") and (
      features is None or field not in features):
    raise ValueError(f"loss.tau_source={source} needs the feature {field}")
  if source == "field_hash":
    return tau_min + span * field_hash(features[field])
  if oracle is None or F.ORACLE_RELATEDNESS not in oracle:
    raise ValueError(f"loss.tau_source={source} needs the oracle columns of "
                     "synthetic data in the batch (features, labels, oracle)")
  r = tf.cast(tf.reshape(oracle[F.ORACLE_RELATEDNESS], [-1]), tf.float32)
  if source == "anti_oracle":
    return tau_min + span * r
  if source == "noisy_oracle":
    r = (1.0 - noise) * r + noise * field_hash(features[field])
  tau = tau_max - span * r
  if source == "shuffled_oracle":
    tau = tf.random.experimental.stateless_shuffle(tau, seed=seed)
  return tau
