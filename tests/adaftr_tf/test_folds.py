"""Tests of adaftr_tf/folds.py: a fixed fold per row from its features."""

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import folds
from tests.helpers.data import synthetic_batch
from tests.helpers.data import tiny_config


def test_a_rows_fold_depends_on_its_features_alone():
  """The same row gets the same fold in any batch, field order or position;
  the folds split the rows about evenly; a changed value can move a row."""
  (features, _), _ = synthetic_batch(tiny_config(), 3000)
  fold = folds.row_fold(features, 3).numpy()
  assert fold.dtype == np.int32 and set(fold) == {0, 1, 2}
  assert np.all(np.abs(np.bincount(fold) / 3000 - 1 / 3) < 0.04)
  reordered = dict(reversed(list(features.items())))
  permutation = np.random.default_rng(0).permutation(3000)
  shuffled = {k: tf.gather(v, permutation) for k, v in reordered.items()}
  np.testing.assert_array_equal(folds.row_fold(shuffled, 3).numpy(),
                                fold[permutation])
  head = {k: v[:10] for k, v in features.items()}
  np.testing.assert_array_equal(folds.row_fold(head, 3).numpy(), fold[:10])
  moved = {**features, "numerical_1": features["numerical_1"] + 1.0}
  assert np.any(folds.row_fold(moved, 3).numpy() != fold)


def test_strings_and_multi_valued_fields_hash_too():
  features = {"c": tf.constant(["a", "b", "a", "d"]),
              "m": tf.constant([[1, 2], [1, 2], [1, 2], [3, 4]], tf.int64)}
  fold = folds.row_fold(features, 2).numpy()
  assert fold[0] == fold[2] and fold.shape == (4,)


def test_folds_need_two_or_more_and_dense_features():
  with pytest.raises(ValueError, match="folds >= 2, got 1"):
    folds.row_fold({"a": tf.constant([1])}, 1)
  sparse = tf.sparse.from_dense(tf.constant([[1, 0]], tf.int64))
  with pytest.raises(ValueError, match="dense features; s is a SparseTensor"):
    folds.row_fold({"s": sparse}, 2)
