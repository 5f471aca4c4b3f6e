"""`field -> ids` token rows (the Ali-CCP layouts) -> per-field RaggedColumns.

Ali-CCP stores each impression as a bag of `field:id` tokens; a field may
repeat (the multi-valued behaviour fields). Rows are grouped per field into
variable-length id lists, so no value is ever truncated; the conversion later
decides which fields are single-valued.
"""

from __future__ import annotations

import abc
from typing import Iterator

import numpy as np

from pipelines.data.formats import base
from pipelines.data.formats import lines
from pipelines.data.records import RaggedColumn

# Ali-CCP fields in the order of the public preprocessed CSV, and the fields
# documented as multi-valued (user behaviour lists; repeated 210 and 853).
ALICCP_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129",
                 "205", "206", "207", "210", "216", "508", "509", "702", "853",
                 "301", "109_14", "110_14", "127_14", "150_14")
ALICCP_MULTIVALENT = ("109_14", "110_14", "127_14", "150_14", "210", "853")


def aliccp_order(name: str):
  """Sort key of feature names: the Ali-CCP order first, then by name."""
  raw = name[1:] if name.startswith("f") else name
  return (ALICCP_FIELDS.index(raw), "") if raw in ALICCP_FIELDS else (
      len(ALICCP_FIELDS), name)


ALICCP_MULTIVALENT_FEATURES = frozenset(
    base.feature_name(f) for f in ALICCP_MULTIVALENT)


class TokenError(ValueError):
  """A malformed token: `kind` is a base bad-row kind."""

  def __init__(self, kind: str, detail: str):
    super().__init__(detail)
    self.kind = kind


_NAMES: dict[str, str] = {}


def parse_tokens(tokens, id_separator: str, value_separator: str | None,
                 where: str = "token", offset: int = 0
                 ) -> dict[str, list[int]]:
  """Groups `field<sep>id[<sep2>value]` tokens by feature name.

  Args:
    tokens: iterable of token strings.
    id_separator: between field and id (":" or "\\x02").
    value_separator: between id and value ("\\x03"), or None (no value).
    where, offset: messages name token k as `{where} {offset + k}` (k from 1).

  Returns:
    feature name -> raw ids in token order.

  Raises:
    TokenError: naming the token position and what is wrong.
  """
  fields: dict[str, list[int]] = {}
  for position, token in enumerate(tokens, offset + 1):
    field, sep, rest = token.partition(id_separator)
    if not sep or not field:
      raise TokenError(base.BAD_TOKEN, f"{where} {position} {token!r} is not "
                       f"field{id_separator!r}id")
    value = ""
    if value_separator is not None:
      rest, sep, value = rest.partition(value_separator)
      if not sep:
        raise TokenError(base.BAD_TOKEN, f"{where} {position} {token!r} has "
                         f"no {value_separator!r}value part")
    try:
      feature_id = int(rest)
      if value_separator is not None:
        float(value)
    except ValueError:
      raise TokenError(base.NON_NUMERIC, f"{where} {position} {token!r}: id "
                       "and value must be numbers") from None
    if not -2**63 <= feature_id < 2**63:
      raise TokenError(base.NON_NUMERIC, f"{where} {position} {token!r}: id "
                       "outside int64")
    name = _NAMES.get(field)
    if name is None:
      name = _NAMES.setdefault(field, base.feature_name(field))
    fields.setdefault(name, []).append(feature_id)
  return fields


class ListBuilder:
  """Collects token rows of a block; `build` gives one RaggedColumn per field.

  Work per row is per field, not per id: each row's id list (a list, or a
  cached numpy array for joined common features) is kept as one chunk and
  the chunks are concatenated once per block.
  """

  def __init__(self):
    self.rows = 0
    self._chunks: dict[str, list] = {}
    self._owners: dict[str, list[int]] = {}
    self._sizes: dict[str, list[int]] = {}

  def add(self, *parts: dict) -> None:
    """Adds one row made of `parts` (e.g. own tokens + joined common ones)."""
    for fields in parts:
      for name, ids in fields.items():
        chunks = self._chunks.get(name)
        if chunks is None:
          chunks = self._chunks[name] = []
          self._owners[name], self._sizes[name] = [], []
        chunks.append(ids)
        self._owners[name].append(self.rows)
        self._sizes[name].append(len(ids))
    self.rows += 1

  def build(self) -> dict[str, RaggedColumn]:
    columns = {}
    for name, chunks in self._chunks.items():
      values = np.concatenate([np.asarray(c, np.int64) for c in chunks])
      lengths = np.bincount(np.asarray(self._owners[name], np.int64),
                            weights=np.asarray(self._sizes[name], np.float64),
                            minlength=self.rows).astype(np.int64)
      columns[name] = RaggedColumn.from_lengths(values, lengths)
    return columns


class Unjoined(Exception):
  """A row whose join partner is missing (counted, not a bad row)."""


def parse_label(cell: str, column: int, name: str) -> int:
  """A 0/1 label cell; TokenError naming the column otherwise."""
  if cell == "0" or cell == "1":
    return int(cell)
  try:
    int(cell)
  except ValueError:
    raise TokenError(base.NON_NUMERIC, f"column {column} ({name}) is {cell!r}, "
                     "expected 0 or 1") from None
  raise TokenError(base.BAD_LABEL, f"column {column} ({name}) is {cell!r}; "
                   "valid labels: [0, 1]")


class TokenSource(base.Source):
  """Lines of `field -> ids` tokens; subclasses implement `parse_line`.

  `parse_line(text)` returns (click, conversion, parts) where parts are
  `parse_tokens` dicts making up the row, raises TokenError for a bad row or
  Unjoined for a row without its join partner.
  """

  categorical = None  # discovered from the data
  multivalent = ALICCP_MULTIVALENT_FEATURES
  field_order = staticmethod(aliccp_order)

  def __init__(self, paths: list[str]):
    self.paths = list(paths)

  def count_rows(self) -> int:
    return sum(lines.count_lines(p) for p in self.paths)

  @abc.abstractmethod
  def parse_line(self, text: str, errors: base.BadRows):
    """One data line -> its parsed row (the layout's own format)."""

  def blocks(self, errors: base.BadRows, progress,
             stop_index: int | None = None) -> Iterator[base.Block]:
    index = 0
    for path in self.paths:
      for first_line, raw in lines.read_batches(path, progress):
        if stop_index is not None and index >= stop_index:
          return
        yield self._block(path, first_line, index, raw, errors)
        if progress is not None:
          progress.update(rows=len(raw))
        index += len(raw)

  def _block(self, path, first_line, index, raw, errors) -> base.Block:
    builder, good, labels, skipped, unjoined, blank = (
        ListBuilder(), [], [], [], [], 0)
    for i, line in enumerate(raw):
      try:
        text = line.decode("utf-8")
        if not text.strip():
          blank += 1
          continue
        click, conversion, parts = self.parse_line(text, errors)
      except UnicodeDecodeError as err:
        errors.report(path, first_line + i, base.BAD_ENCODING,
                      f"byte {err.start + 1} is not UTF-8")
        skipped.append((index + i, base.BAD_ENCODING))
        continue
      except TokenError as err:
        errors.report(path, first_line + i, err.kind, str(err))
        skipped.append((index + i, err.kind))
        continue
      except Unjoined:
        unjoined.append(index + i)
        continue
      builder.add(*parts)
      good.append(i)
      labels.append((click, conversion))
    good = np.asarray(good, np.int64)
    labels = np.asarray(labels, np.int64).reshape(-1, 2)
    return base.Block(path=path, index=index + good, lines=first_line + good,
                      ids={}, lists=builder.build(), values={},
                      click=labels[:, 0], conversion=labels[:, 1],
                      skipped=skipped,
                      unjoined=np.asarray(unjoined, np.int64), blank=blank)
