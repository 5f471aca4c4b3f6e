"""Tests of adaftr_tf.feature_fields: each field's validation (run when a
schema is built)."""

import pytest

from adaftr_tf import features as F


def test_empty_names_rejected():
  with pytest.raises(ValueError, match="categorical feature has an empty name"):
    F.FeatureSchema((F.CategoricalFeature("", 2),), ())
  with pytest.raises(ValueError, match="numerical feature has an empty name"):
    F.FeatureSchema((), (F.NumericalFeature(""),))


def test_bad_encoding_lists_valid_encodings():
  with pytest.raises(ValueError, match="'a': unknown encoding 'onehot'") as info:
    F.FeatureSchema((F.CategoricalFeature("a", 2, encoding="onehot"),), ())
  for encoding in F.CATEGORICAL_ENCODINGS:
    assert encoding in str(info.value)


@pytest.mark.parametrize("vocab_size", [0, -3])
def test_vocab_size_must_be_positive(vocab_size):
  with pytest.raises(ValueError, match=f"vocab_size must be >= 1, got {vocab_size}"):
    F.FeatureSchema((F.CategoricalFeature("a", vocab_size),), ())


def test_vocabulary_length_mismatch():
  with pytest.raises(ValueError, match="'a': vocabulary has 2 ids but vocab_size "
                     "is 3"):
    F.FeatureSchema((F.CategoricalFeature("a", 3, "vocabulary", (1, 2)),), ())
  with pytest.raises(ValueError, match="vocabulary has 0 ids"):
    F.FeatureSchema((F.CategoricalFeature("a", 3, "vocabulary"),), ())


def test_vocabulary_with_duplicate_ids_rejected():
  with pytest.raises(ValueError, match="'a'"):
    F.FeatureSchema((F.CategoricalFeature("a", 3, "vocabulary", (5, 5, 6)),), ())


@pytest.mark.parametrize("std", [0.0, -1.0, float("nan"), float("inf")])
def test_std_must_be_finite_positive(std):
  with pytest.raises(ValueError, match="'x': std must be finite and > 0"):
    F.FeatureSchema((), (F.NumericalFeature("x", std=std),))


@pytest.mark.parametrize("kwargs", [{"mean": float("nan")},
                                    {"default": float("inf")}])
def test_mean_and_default_must_be_finite(kwargs):
  with pytest.raises(ValueError, match="'x': mean and default must be finite"):
    F.FeatureSchema((), (F.NumericalFeature("x", **kwargs),))
