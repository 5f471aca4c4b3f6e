"""Tests of formats/aliccp_text.py (the PaddleRec layout): the real sample rows
in tests/data/samples, and fuzzed lines against an independent reference parse."""

import os

from hypothesis import given
from hypothesis import strategies as st
import pytest

from pipelines.data.formats import aliccp_text
from pipelines.data.formats import base
from tests.helpers.conversion import read_blocks
from tests.helpers.fuzz import FUZZ, split_cells


def test_aliccp_text_real_rows_keep_every_token(shared_data_dir):
  path = os.path.join(shared_data_dir, "small.txt")
  source, blocks = read_blocks("aliccp_text", path)
  assert len(blocks) == 1 and len(blocks[0]) == 10
  block = blocks[0]
  with open(path) as f:
    lines = f.read().splitlines()
  for i, line in enumerate(lines):
    cells = line.split(",")
    assert block.click[i] == int(cells[1])
    assert block.conversion[i] == int(cells[2])
    expected = {}
    for token in cells[3:]:  # the first token included
      field, feature_id = token.split(":")
      expected.setdefault("f" + field, []).append(int(feature_id))
    for name, ids in expected.items():
      column = block.lists[name]
      got = column.values[column.row_splits[i]:column.row_splits[i + 1]]
      assert got.tolist() == ids, (i, name)
  lengths = block.lists["f110_14"].lengths
  assert lengths.min() > 300  # ~342 ids each: a list, not one id
  assert block.lists["f210"].lengths.max() >= 3
  assert block.click.sum() == 2 and block.conversion.sum() == 1


# --- fuzzed lines -------------------------------------------------------------

TOKENS = st.one_of(
    st.sampled_from(["101:1", "210:4", "210:5", "150_14:18", "x:1", ":3",
                     "101:", "101:1.5", "101:" + "9" * 25, "101:-2", "a:b:c",
                     "101 : 7", "853:\u0662"]),
    st.text("0123456789:_ab-", max_size=8))


LINES = st.lists(st.one_of(
    st.tuples(st.sampled_from(["1", "x", ""]), st.sampled_from(["0", "1", "2",
                                                                "a"]),
              st.sampled_from(["0", "1", "-1"]), st.lists(TOKENS, max_size=5))
    .map(lambda t: ",".join([t[0], t[1], t[2], *t[3]])),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1"))), max_size=10)


def _ccp_reference(line: bytes):
  """{feature: [ids]} with labels of a good line, 'blank', or None."""
  cells = split_cells(line)
  if cells is None or cells == "blank":
    return cells
  if len(cells) < 3 or cells[1] not in ("0", "1") or cells[2] not in ("0",
                                                                      "1"):
    return None
  try:
    int(cells[0])
  except ValueError:
    return None
  fields = {}
  for token in cells[3:]:
    field, sep, rest = token.partition(":")
    if not sep or not field:
      return None
    try:
      value = int(rest)
    except ValueError:
      return None
    if not -2**63 <= value < 2**63:
      return None
    fields.setdefault(base.feature_name(field), []).append(value)
  return (int(cells[1]), int(cells[2])), fields


@pytest.mark.reliability
@FUZZ
@given(lines=LINES)
def test_aliccp_text_rows_equal_a_reference_parse(tmp_path, lines):
  path = tmp_path / "train.txt"
  raw = [line.encode("utf-8", "surrogatepass").replace(b"\n", b" ")
         .replace(b"\r", b" ") for line in lines]
  path.write_bytes(b"".join(line + b"\n" for line in raw))
  blocks = list(aliccp_text.TextSource([str(path)]).blocks(
      base.BadRows(skip=True), None))
  expected = [_ccp_reference(line) for line in raw]
  good = [i for i, e in enumerate(expected) if e not in (None, "blank")]
  assert sum(b.blank for b in blocks) == expected.count("blank")
  assert sum(len(b.skipped) for b in blocks) == expected.count(None)
  kept = [(b, k) for b in blocks for k in range(len(b))]
  assert [int(b.index[k]) for b, k in kept] == good
  for (block, k), i in zip(kept, good):
    labels, fields = expected[i]
    assert (block.click[k], block.conversion[k]) == labels
    got = {name: column.values[column.row_splits[k]:column.row_splits[k + 1]]
           .tolist() for name, column in block.lists.items()}
    assert {n: v for n, v in got.items() if v} == fields, raw[i]
