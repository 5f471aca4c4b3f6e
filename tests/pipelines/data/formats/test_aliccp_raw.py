"""Tests of formats/aliccp_raw.py: sample skeleton joined with the common
features; and the generated sample files."""

import os

from tests.helpers.conversion import read_blocks
from tests.helpers.samples import aliccp_raw_lines, write_aliccp_raw


def test_aliccp_raw_sample_follows_the_layout():
  skeleton, common = aliccp_raw_lines()
  for line in skeleton:
    cells = line.split(",")
    assert len(cells) == 6
    tokens = cells[5].split("\x01")
    assert len(tokens) == int(cells[4])
    assert all(t.count("\x02") == 1 and t.count("\x03") == 1 for t in tokens)
  keys = {c.split(",")[0] for c in common}
  assert {s.split(",")[3] for s in skeleton} == keys
  assert any(s.count("210\x02") == 2 for s in skeleton)


def test_aliccp_raw_joins_common_features(tmp_path):
  folder = write_aliccp_raw(tmp_path / "ccp", splits=("train",))
  _, blocks = read_blocks("aliccp_raw", folder)
  block = blocks[0]
  with open(os.path.join(folder, "common_features_train.csv")) as f:
    common = {c[0]: c[2] for c in (line.rstrip("\n").split(",") for line in f)}
  with open(os.path.join(folder, "sample_skeleton_train.csv")) as f:
    skeleton = [line.rstrip("\n").split(",") for line in f]
  for i, cells in enumerate(skeleton):
    tokens = common[cells[3]].split("\x01") + cells[5].split("\x01")
    expected = {}
    for token in tokens:
      field, rest = token.split("\x02")
      expected.setdefault("f" + field, []).append(int(rest.split("\x03")[0]))
    for name, ids in expected.items():
      column = block.lists[name]
      assert column.values[column.row_splits[i]:
                           column.row_splits[i + 1]].tolist() == ids
