"""Tests of adaftr_tf/tasks/teacher_fields.py: a linear gate's logit split
into per-field parts, each field's share of their variance, and the logit
read through the fields with at least a given share (values against a
direct numpy computation on a tiny batch)."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf.tasks import teacher_fields

FIELDS, DIM, BATCH = 4, 3, 16


def _batch(seed=0):
  """x `[BATCH, F*D]`, a kernel `[F*D, 1]` whose field 2 weighs ~1000x less
  than the others, and a bias `[1]`."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(BATCH, FIELDS * DIM)).astype(np.float32)
  kernel = rng.normal(size=(FIELDS * DIM, 1)).astype(np.float32)
  kernel[2 * DIM:3 * DIM] *= 1e-3
  return x, kernel, np.array([0.7], np.float32)


def _numpy_parts(x, kernel):
  return np.stack([x[:, j * DIM:(j + 1) * DIM] @ kernel[j * DIM:(j + 1) * DIM, 0]
                   for j in range(FIELDS)], axis=1)


def test_the_parts_of_a_linear_logit_sum_to_it():
  x, kernel, bias = _batch()
  parts = teacher_fields.field_parts(tf.constant(x), tf.constant(kernel),
                                     FIELDS).numpy()
  assert parts.shape == (BATCH, FIELDS)
  np.testing.assert_allclose(parts, _numpy_parts(x, kernel), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(parts.sum(1), (x @ kernel)[:, 0], rtol=1e-5,
                             atol=1e-5)


def test_shares_are_each_fields_part_of_the_variance():
  x, kernel, _ = _batch()
  parts = _numpy_parts(x, kernel)
  shares = teacher_fields.field_shares(tf.constant(parts)).numpy()
  expected = parts.var(0) / parts.var(0).sum()
  np.testing.assert_allclose(shares, expected, rtol=1e-5)
  assert shares.sum() == pytest.approx(1.0, abs=1e-6)
  assert shares[2] < 1e-4   # the near-zero block
  zero = teacher_fields.field_shares(tf.ones([BATCH, FIELDS])).numpy()
  np.testing.assert_array_equal(zero, np.zeros(FIELDS))


@pytest.mark.parametrize("min_share", [0.0, 0.01, 0.3])
def test_the_pruned_logit_drops_the_fields_below_the_share(min_share):
  x, kernel, bias = _batch()
  parts = _numpy_parts(x, kernel)
  shares = parts.var(0) / parts.var(0).sum()
  keep = shares >= min_share
  expected = parts[:, keep].sum(1) + bias[0]
  logit = teacher_fields.pruned_logit(tf.constant(x), tf.constant(kernel),
                                      tf.constant(bias), FIELDS, min_share)
  assert logit.shape == (BATCH,)
  np.testing.assert_allclose(logit.numpy(), expected, rtol=1e-5, atol=1e-5)
  if min_share == 0.0:   # the plain linear logit
    np.testing.assert_allclose(logit.numpy(), (x @ kernel)[:, 0] + bias[0],
                               rtol=1e-5, atol=1e-5)
  else:
    assert not keep[2]


def test_embeddings_that_do_not_split_into_the_fields_are_refused():
  x, kernel, _ = _batch()
  with pytest.raises(ValueError, match=r"embeddings of width 12 do not split "
                     r"into 5 fields"):
    teacher_fields.field_parts(tf.constant(x), tf.constant(kernel), 5)
