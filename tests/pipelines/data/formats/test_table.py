"""Tests of formats/table.py, the CSV table parser (AliExpress CSVs, Ali-CCP
CSV): fuzzed rows against an independent reference parse, enormous values."""

import math

from hypothesis import given
from hypothesis import strategies as st
import pytest

from adaftr_tf import features as F
from pipelines.data.formats import base
from pipelines.data.formats import table
from tests.helpers.fuzz import FUZZ, split_cells

pytestmark = pytest.mark.reliability


COLUMNS = (table.Column("id", table.ID), table.Column("x", table.VALUE),
           table.Column("click", table.LABEL, (0, 1)))


CELLS = st.one_of(
    st.sampled_from(["0", "1", "2", "-3", "12.0", "1.5", "nan", "-inf", "inf",
                     "1e999", "", " ", "abc", "9" * 30, "9007199254740993",
                     "-9223372036854775808", "9223372036854775808", "0x1F",
                     "1e3", " 7 ", "+1", "1_0", "\u0661", "\u00e9", "0,1"]),
    st.integers(-2**70, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text("0123456789.-+eEnaifINF_x ", max_size=8))


ROWS = st.lists(st.one_of(st.lists(CELLS, min_size=3, max_size=3).map(",".join),
                          st.lists(CELLS, max_size=5).map(",".join),
                          st.binary(max_size=12).map(
                              lambda b: b.decode("latin-1"))),
                min_size=1, max_size=12).map(
    # Lines as `lines.read_batches` gives them: no EOL characters inside.
    lambda rows: [r.replace("\n", " ").replace("\r", " ") for r in rows])


def _int(cell: str):
  try:
    return int(cell)
  except ValueError:
    value = float(cell)
    if not (math.isfinite(value) and value.is_integer()):
      raise
    return int(value)


def _reference(line: bytes, replace: bool):
  """(id, x, click) of a good row, 'blank', or None for a bad row."""
  cells = split_cells(line)
  if cells == "blank":
    return cells
  if cells is None or len(cells) != 3:
    return None
  try:
    ident, x, click = _int(cells[0]), float(cells[1]), _int(cells[2])
  except (ValueError, OverflowError):
    return None
  if not -2**63 <= ident < 2**63 or click not in (0, 1):
    return None
  if not math.isfinite(x):
    if not replace:
      return None
    x = F.NumericalFeature.default
  return ident, x, click


@FUZZ
@given(rows=ROWS, replace=st.booleans())
def test_table_parser_rows_equal_a_reference_parse(rows, replace):
  raw = [r.encode("utf-8", "surrogatepass") for r in rows]
  errors = base.BadRows(skip=True,
                        non_finite="replace" if replace else "error")
  parsed = table.parse(raw, COLUMNS, "f.csv", 2, errors)
  expected = [_reference(line, replace) for line in raw]
  good = [i for i, e in enumerate(expected) if e not in (None, "blank")]
  assert parsed.positions.tolist() == good
  assert [i for i, _ in parsed.skipped] == [i for i, e in enumerate(expected)
                                           if e is None]
  assert parsed.blank == [i for i, e in enumerate(expected) if e == "blank"]
  for k, i in enumerate(good):
    ident, x, click = expected[i]
    assert parsed.ints["id"][k] == ident, raw[i]
    assert parsed.ints["click"][k] == click, raw[i]
    assert parsed.floats["x"][k] == pytest.approx(x, rel=1e-15), raw[i]
  if good and replace:
    assert parsed.replaced["x"].sum() == sum(
        not math.isfinite(float(raw[i].decode().split(",")[1])) for i in good)
  # Without skipping, the first bad row is the error, naming its line.
  bad = [i for i, e in enumerate(expected) if e is None]
  strict = base.BadRows(skip=False, non_finite=errors.non_finite)
  if bad:
    with pytest.raises(base.BadRowError) as info:
      table.parse(raw, COLUMNS, "f.csv", 2, strict)
    assert info.value.line == 2 + bad[0]
    assert str(info.value).startswith(f"f.csv:{2 + bad[0]}: ")
  else:
    table.parse(raw, COLUMNS, "f.csv", 2, strict)


def test_an_enormous_value_is_a_bad_row_not_a_crash(tmp_path):
  huge = "9" * 100_000
  raw = [f"{huge},0.5,1".encode(), f"1,{huge},1".encode(),
         f"1,0.{huge},0".encode()]
  parsed = table.parse(raw, COLUMNS, "f.csv", 2, base.BadRows(skip=True))
  assert [i for i, _ in parsed.skipped] == [0, 1]  # id beyond int64; x = inf
  assert parsed.floats["x"].tolist() == [1.0]  # 0.999... rounds to 1.0
