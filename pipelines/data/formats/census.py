"""UCI Census-Income (KDD), the raw layout: the MMoE paper's two-task data.

One person per line, no header, 42 fields separated by ", " (comma and
space), the last ending with a period (`- 50000.` or `50000+.`); `?` marks a
missing value. `COLUMNS` names the fields (keras-mmoe's names).
`--input`: one file (`census-income.test.gz`, gzip or plain) or a folder
whose `census-income*.gz` files (else its plain `census-income*` files,
`census-income.names` left out) are read in name order as ONE pool of rows.

Labels (independent tasks, every row has both; `label_relation` independent):
  * `income_50k`: 1 for `50000+.`, 0 for `- 50000.`; any other value makes
    the row a bad row (`unknown_label_value`);
  * `never_married`: 1 when `marital_stat` is `Never married`, else 0.
Features: every other column but `instance_weight` (the survey's sampling
weight, which describes how the row was drawn, not the person: read, never
checked, dropped); `marital_stat` and `income_50k` are label sources only, so
no label leaks into the features. Continuous (float, normalised with the
train rows' mean/std): age, wage_per_hour, capital_gains, capital_losses,
stock_dividends, num_emp, weeks_worked; a non-numeric value there is a bad
row (`non_numeric_value`). Every other column is categorical, the numeric
codes det_ind_code, det_occ_code, own_or_self, vet_benefits and year
included: a value (text, stripped of surrounding spaces) becomes the raw id
`category_id(value)`, and the converter fits vocabularies on the train rows
as for every layout. `?` is a category of its own, not a missing id: it
is informative here (the migration fields are `?` in every 1995 row, when
the questions were not asked; a `?` birth country is unknown to the survey),
as is "Not in universe".

Splits: the file has none of its own. `SPLITTER = splitting.SeededRows`:
each row goes to test (20%), valid (`--valid_fraction`, default 20%) or
train (the rest) by a hash of (`--split_seed`, default 42; row index).

Parsing: each line is translated into the numeric table layout of
`table_columns()` (categorical values -> ids, labels -> 0/1, continuous
cells as they are) and parsed by `table.parse`, which finds, reports
(`file:line`) or skips every bad row as for the other table layouts. A line
that is not 42 UTF-8 fields is passed on untranslated, for `table.parse` to
report.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from adaftr_tf import features as F
from pipelines.data.formats import base
from pipelines.data.formats import lines
from pipelines.data.formats import splitting
from pipelines.data.formats import table
from pipelines.data.formats import tabular

NAME = "census"
SPLITTER = splitting.SeededRows
# The gzip files, else the plain ones (not census-income.names: ends in s).
PATTERNS = {"train": ("census-income*.gz", "census-income*[!s]")}
SEPARATOR = ", "

COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education",
    "wage_per_hour", "hs_college", "marital_stat", "major_ind_code",
    "major_occ_code", "race", "hisp_origin", "sex", "union_member",
    "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses",
    "stock_dividends", "tax_filer_stat", "region_prev_res", "state_prev_res",
    "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa",
    "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt", "num_emp",
    "fam_under_18", "country_father", "country_mother", "country_self",
    "citizenship", "own_or_self", "vet_question", "vet_benefits",
    "weeks_worked", "year", "income_50k")
CONTINUOUS = frozenset(("age", "wage_per_hour", "capital_gains",
                        "capital_losses", "stock_dividends", "num_emp",
                        "weeks_worked"))
WEIGHT = "instance_weight"
INCOME, MARITAL, NEVER_MARRIED = "income_50k", "marital_stat", "never_married"
LABELS = (INCOME, NEVER_MARRIED)
INCOME_VALUES = {"- 50000.": 0, "50000+.": 1}
NEVER_MARRIED_VALUE = "Never married"
_UNKNOWN_INCOME = "-1"  # translated unknown income: table.parse's bad label
_ID_MASK = (1 << 53) - 1


def category_id(value: str) -> int:
  """The raw int64 id of a categorical value.

  The first 8 bytes of the SHA-256 of its UTF-8 text, big-endian, masked to
  53 bits: the same for a value in every row, file and run (no dependence
  on row order), non-negative, and exact as a float64 (so `table.parse`
  reads translated lines on its fast path). Two values of a field collide
  with probability ~n**2 / 2**54 for n distinct values (census: n < 100).
  """
  digest = hashlib.sha256(value.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") & _ID_MASK


@functools.lru_cache(maxsize=1 << 16)
def _id_text(value: str) -> str:
  return str(category_id(value))


def table_columns() -> tuple[table.Column, ...]:
  """The numeric layout of a translated line: one Column per census field."""
  def column(name):
    if name in CONTINUOUS:
      return table.Column(name, table.VALUE)
    if name == WEIGHT:
      return table.Column(name, table.IGNORE)
    if name == MARITAL:
      return table.Column(NEVER_MARRIED, table.LABEL, (0, 1))
    if name == INCOME:
      return table.Column(INCOME, table.LABEL, (0, 1))
    return table.Column(name, table.ID)
  return tuple(column(name) for name in COLUMNS)


def _translate_cell(name: str, cell: str) -> str:
  if name in CONTINUOUS or name == WEIGHT:
    return cell
  value = cell.strip()
  if name == MARITAL:
    return "1" if value == NEVER_MARRIED_VALUE else "0"
  if name == INCOME:
    return str(INCOME_VALUES.get(value, _UNKNOWN_INCOME))
  return _id_text(value)


def translate(raw: list[bytes]) -> tuple[list[bytes], dict[int, str]]:
  """Census lines -> lines of `table_columns()` (same separator).

  Args:
    raw: lines without EOL.

  Returns:
    (the translated lines, position -> raw text of each unknown income
    value). Lines that are not 42 UTF-8 fields (blank lines included) are
    returned as they are.
  """
  out, unknown = [], {}
  for i, line in enumerate(raw):
    try:
      fields = line.decode("utf-8").split(SEPARATOR)
    except UnicodeDecodeError:
      fields = []
    if len(fields) != len(COLUMNS):
      out.append(line)
      continue
    cells = [_translate_cell(n, c) for n, c in zip(COLUMNS, fields)]
    if cells[-1] == _UNKNOWN_INCOME:
      unknown[i] = fields[-1]
    out.append(SEPARATOR.join(cells).encode("utf-8"))
  return out, unknown


class _IncomeErrors:
  """The bad-row policy seen by `table.parse` of one translated batch: an
  unknown income value (translated to -1) is reported with its raw text."""

  def __init__(self, errors: base.BadRows, first_line: int,
               unknown: dict[int, str]):
    self.errors, self.first_line, self.unknown = errors, first_line, unknown
    self.non_finite = errors.non_finite

  def report(self, path: str, line: int, kind: str, detail: str) -> None:
    raw = self.unknown.get(line - self.first_line)
    if kind == base.BAD_LABEL and raw is not None:
      detail = (f"column {len(COLUMNS)} ({INCOME}) is {raw!r}; valid: "
                f"{list(INCOME_VALUES)}")
    self.errors.report(path, line, kind, detail)


def _labels(ints: dict[str, np.ndarray]):
  return ints[INCOME], ints[NEVER_MARRIED]


class CensusSource(tabular.TableSource):
  """The census lines of `paths`, one pool of rows (no header)."""

  label_names = LABELS
  label_relation = F.INDEPENDENT

  def __init__(self, paths: list[str]):
    super().__init__(paths, table_columns(), header=False, labels=_labels)

  def parsed_batches(self, errors: base.BadRows, progress,
                     stop_index: int | None = None):
    """As `TableSource.parsed_batches`, over translated lines."""
    index = 0
    for path in self.paths:
      for first_line, raw in lines.read_batches(path, progress):
        if stop_index is not None and index >= stop_index:
          return
        translated, unknown = translate(raw)
        parsed = table.parse(translated, self.columns, path, first_line,
                             _IncomeErrors(errors, first_line, unknown),
                             delimiter=SEPARATOR)
        if progress is not None:
          progress.update(rows=len(raw))
        yield path, first_line, index, len(raw), parsed
        index += len(raw)


def sources(input_path: str) -> dict[str, base.Source]:
  """{"train": the pool of every row}, which `SPLITTER` splits by seed."""
  files = base.find_files(input_path, PATTERNS, NAME)
  return {splitting.TRAIN: CensusSource(files[splitting.TRAIN])}
