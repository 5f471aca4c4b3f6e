"""The input fields of a feature schema (adaftr_tf/features.py): one
categorical or numerical field each, with its encoding, defaults and
normalisation statistics, validated."""

from __future__ import annotations

import dataclasses
import math

CATEGORICAL_ENCODINGS = ("identity", "vocabulary", "hash")


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class CategoricalFeature:
  """A categorical field stored as raw int64 id(s).

  Attributes:
    name: feature key in the records.
    vocab_size: number of in-vocabulary embedding rows; row `vocab_size` is
      the out-of-vocabulary (OOV) bucket, so the table has `vocab_size + 1` rows.
    encoding: how a raw id becomes a row: `identity` (ids 0..vocab_size-1 are
      rows, anything else is OOV), `vocabulary` (row = position of the raw id in
      `vocabulary`, unknown ids are OOV) or `hash` (raw id hashed into
      `vocab_size` buckets; nothing is OOV except the missing-value default).
    vocabulary: the raw ids, for `encoding="vocabulary"`.
    default: raw id used when the feature is missing from a record; -1 is
      outside every identity vocabulary, so a missing id lands in OOV. For a
      multivalent field it is the padding value of dense `[batch, n]` inputs.
    multivalent: the record holds a list of ids per row (e.g. Ali-CCP's
      behaviour fields); its rows are pooled into one embedding and an empty
      list reads the OOV row.
  """

  name: str
  vocab_size: int
  encoding: str = "identity"
  vocabulary: tuple[int, ...] = ()
  default: int = -1
  multivalent: bool = False

  @property
  def num_embeddings(self) -> int:
    return self.vocab_size + 1

  @property
  def oov_index(self) -> int:
    return self.vocab_size

  def validate(self) -> None:
    if not self.name:
      raise ValueError("categorical feature has an empty name")
    if self.encoding not in CATEGORICAL_ENCODINGS:
      raise ValueError(f"categorical feature {self.name!r}: unknown encoding "
                       f"{self.encoding!r}; valid: {CATEGORICAL_ENCODINGS}")
    if not _is_int(self.vocab_size) or not _is_int(self.default):
      raise ValueError(f"categorical feature {self.name!r}: vocab_size and "
                       f"default must be ints, got {self.vocab_size!r} and "
                       f"{self.default!r}")
    if not isinstance(self.multivalent, bool):
      raise ValueError(f"categorical feature {self.name!r}: multivalent must "
                       f"be a bool, got {self.multivalent!r}")
    if not all(_is_int(v) for v in self.vocabulary):
      raise ValueError(f"categorical feature {self.name!r}: vocabulary ids "
                       "must be ints")
    if len(set(self.vocabulary)) != len(self.vocabulary):
      raise ValueError(f"categorical feature {self.name!r}: vocabulary has "
                       "duplicate ids")
    if self.vocab_size < 1:
      raise ValueError(f"categorical feature {self.name!r}: vocab_size must be "
                       f">= 1, got {self.vocab_size}")
    if self.encoding == "vocabulary" and len(self.vocabulary) != self.vocab_size:
      raise ValueError(f"categorical feature {self.name!r}: vocabulary has "
                       f"{len(self.vocabulary)} ids but vocab_size is "
                       f"{self.vocab_size}")


@dataclasses.dataclass(frozen=True)
class NumericalFeature:
  """A float field, normalised in-graph as `(x - mean) / std`.

  Attributes:
    name: feature key in the records.
    mean, std: normalisation statistics, fitted on the train split only.
    default: raw value used when the feature is missing from a record.
  """

  name: str
  mean: float = 0.0
  std: float = 1.0
  default: float = 0.0

  def validate(self) -> None:
    if not self.name:
      raise ValueError("numerical feature has an empty name")
    if not all(_is_number(v) for v in (self.mean, self.std, self.default)):
      raise ValueError(f"numerical feature {self.name!r}: mean, std and "
                       f"default must be numbers, got {self.mean!r}, "
                       f"{self.std!r}, {self.default!r}")
    if not (math.isfinite(self.std) and self.std > 0):
      raise ValueError(f"numerical feature {self.name!r}: std must be finite "
                       f"and > 0, got {self.std}")
    if not (math.isfinite(self.mean) and math.isfinite(self.default)):
      raise ValueError(f"numerical feature {self.name!r}: mean and default "
                       f"must be finite")
