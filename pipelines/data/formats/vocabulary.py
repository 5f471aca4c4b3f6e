"""Categorical fields: id counts on the train split -> vocabulary or hash buckets.

A vocabulary keeps the ids seen at least `min_count` times in the train split
(most frequent first, at most `max_size`); every other id reads the field's
OOV row. With `hash_buckets > 0` ids are hashed instead and nothing is
counted (bounded memory for huge id spaces; no OOV except missing values).
"""

from __future__ import annotations

import numpy as np

from adaftr_tf import features as F


class IdCounter:
  """Occurrences of each raw id of one field (and the longest list seen)."""

  def __init__(self, count: bool = True):
    self.count = count
    self.counts: dict[int, int] = {}
    self.values = 0
    self.max_length = 0

  def update(self, ids: np.ndarray, max_length: int = 1) -> None:
    self.values += len(ids)
    self.max_length = max(self.max_length, max_length)
    if not self.count or not len(ids):
      return
    unique, counts = np.unique(ids, return_counts=True)
    get = self.counts.get
    for value, n in zip(unique.tolist(), counts.tolist()):
      self.counts[value] = get(value, 0) + n

  @property
  def cardinality(self) -> int | None:
    """Distinct ids seen (None when not counted)."""
    return len(self.counts) if self.count else None


def fit(name: str, counter: IdCounter, multivalent: bool, min_count: int,
        max_size: int = 0, hash_buckets: int = 0) -> F.CategoricalFeature:
  """The schema entry of one categorical field.

  Args:
    name: feature name.
    counter: train-split counts.
    multivalent: whether the field holds id lists.
    min_count: ids seen fewer times are out of vocabulary.
    max_size: keep at most this many ids (0: no cap).
    hash_buckets: > 0 hashes ids into this many buckets instead.

  Returns:
    A `CategoricalFeature` with `vocabulary` (or `hash`) encoding. A field
    whose ids are all rare gets a single hash bucket (all ids share one row).
  """
  if hash_buckets > 0:
    return F.CategoricalFeature(name, hash_buckets, "hash",
                                multivalent=multivalent)
  kept = [(-n, v) for v, n in counter.counts.items() if n >= min_count]
  kept.sort()
  if max_size > 0:
    kept = kept[:max_size]
  if not kept:
    return F.CategoricalFeature(name, 1, "hash", multivalent=multivalent)
  vocabulary = tuple(v for _, v in kept)
  return F.CategoricalFeature(name, len(vocabulary), "vocabulary", vocabulary,
                              multivalent=multivalent)


class OovCounter:
  """Counts ids that a field's encoding maps to its OOV row."""

  def __init__(self, feature: F.CategoricalFeature):
    self.feature = feature
    self.sorted = np.sort(np.asarray(feature.vocabulary, np.int64))
    self.oov = 0
    self.total = 0

  def update(self, ids: np.ndarray) -> None:
    self.total += len(ids)
    if self.feature.encoding == "hash":
      self.oov += int(np.sum(ids == self.feature.default))
      return
    pos = np.minimum(np.searchsorted(self.sorted, ids), len(self.sorted) - 1)
    self.oov += int(np.sum(self.sorted[pos] != ids))

  @property
  def rate(self) -> float | None:
    return self.oov / self.total if self.total else None
