"""Tests of formats/base.py: bad rows of every kind in every layout. The first
stops the conversion with its file and line (header included); with
skip_bad_rows each is skipped and counted, and kept + skipped + dropped = read
still holds (the converter checks it). Missing inputs are named."""

import os
import shutil

import pytest

from pipelines.data import formats
from pipelines.data.formats import base
from tests.helpers.conversion import convert
from tests.helpers.samples import (aliccp_raw_lines, aliexpress_raw_lines,
                                   feature_list, write_lines)

BAD_ROW = 3  # 0-based data row that gets corrupted (in the train split)


def _set(line, index, value, sep=","):
  cells = line.split(sep)
  cells[index] = value
  return sep.join(cells)


def _drop_last(line):
  return line.rsplit(",", 1)[0]


def _bad_token(line):
  cells = line.split(",")
  tokens = cells[5].split("\x01")
  tokens[0] = "205\x02x\x031.0"
  return ",".join(cells[:5] + ["\x01".join(tokens)])


def _shared(shared_data_dir, name, rows=30):
  with open(os.path.join(shared_data_dir, name)) as f:
    lines = f.read().splitlines()
  return lines[:rows + 1]


# layout -> (header lines, corruption per kind)
CORRUPT = {
    "aliexpress_csv": (1, {base.WRONG_COLUMNS: _drop_last,
                           base.NON_NUMERIC: lambda l: _set(l, 20, "abc"),
                           base.BAD_LABEL: lambda l: _set(l, 80, "3")}),
    "aliccp_csv": (1, {base.WRONG_COLUMNS: _drop_last,
                       base.NON_NUMERIC: lambda l: _set(l, 30, "0.1x"),
                       base.BAD_LABEL: lambda l: _set(l, 0, "2")}),
    "aliccp_text": (0, {base.WRONG_COLUMNS: lambda l: "5,1",
                        base.NON_NUMERIC: lambda l: _set(l, 5, "210:x"),
                        base.BAD_LABEL: lambda l: _set(l, 1, "2")}),
    "aliexpress_raw": (0, {base.WRONG_COLUMNS: _drop_last,
                           base.NON_NUMERIC: lambda l: _set(l, 2, "abc"),
                           base.BAD_LABEL: lambda l: _set(l, 48, "5")}),
    "aliccp_raw": (0, {base.WRONG_COLUMNS: _drop_last,
                       base.NON_NUMERIC: _bad_token,
                       base.BAD_LABEL: lambda l: _set(l, 1, "2")}),
}


def _write(layout, folder, shared_data_dir, corrupt=None):
  """Writes a small input of `layout`; returns (--input, corrupted file)."""
  os.makedirs(folder, exist_ok=True)
  header, _ = CORRUPT[layout]
  if layout == "aliexpress_raw":
    users, lines = aliexpress_raw_lines()
    write_lines(os.path.join(folder, "us_user_train.csv"), users)
    path, target = os.path.join(folder, "us_item_train.csv"), folder
  elif layout == "aliccp_raw":
    lines, common = aliccp_raw_lines()
    write_lines(os.path.join(folder, "common_features_train.csv"), common)
    path, target = os.path.join(folder, "sample_skeleton_train.csv"), folder
  else:
    name = {"aliexpress_csv": "aliexpress_train_sample.csv",
            "aliccp_csv": "ali_ccp_train_sample.csv",
            "aliccp_text": "small.txt"}[layout]
    lines = _shared(shared_data_dir, name)
    path = target = os.path.join(folder, "train" + os.path.splitext(name)[1])
  if corrupt is not None:
    lines[header + BAD_ROW] = corrupt(lines[header + BAD_ROW])
  write_lines(path, lines)
  return target, path


def _convert(layout, path, out, skip):
  return convert(layout, path, out, skip_bad_rows=skip)


CASES = [(layout, kind) for layout, (_, kinds) in CORRUPT.items()
         for kind in kinds]


@pytest.mark.parametrize("layout, kind", CASES)
def test_bad_row_stops_with_file_and_line(tmp_path, shared_data_dir, layout,
                                          kind):
  header, kinds = CORRUPT[layout]
  target, path = _write(layout, tmp_path / "in", shared_data_dir, kinds[kind])
  with pytest.raises(base.BadRowError) as info:
    _convert(layout, target, tmp_path / "out", skip=False)
  line = header + BAD_ROW + 1
  assert (info.value.path, info.value.line, info.value.kind) == (path, line,
                                                                 kind)
  assert f"{path}:{line}:" in str(info.value)
  assert "--skip_bad_rows" in str(info.value)
  assert not os.path.exists(tmp_path / "out")
  assert not os.path.exists(str(tmp_path / "out") + ".partial")


@pytest.mark.parametrize("layout, kind", CASES)
def test_bad_row_skipped_and_counted(tmp_path, shared_data_dir, layout, kind):
  header, kinds = CORRUPT[layout]
  target, path = _write(layout, tmp_path / "in", shared_data_dir, kinds[kind])
  report = _convert(layout, target, tmp_path / "out", skip=True)
  train = report["splits"]["train"]
  assert train["skipped_by_kind"] == {kind: 1}
  total_read = sum(s["read"] for s in report["splits"].values())
  total_kept = sum(s["rows"] for s in report["splits"].values())
  assert total_kept == total_read - 1 - sum(
      s["unjoined"] + s["dropped_conversion_without_click"]
      for s in report["splits"].values())
  assert report["bad_row_examples"][0].startswith(
      f"{path}:{header + BAD_ROW + 1}: {kind}")


def test_not_utf8_row(tmp_path, shared_data_dir):
  layout = "aliexpress_csv"
  target, path = _write("aliexpress_csv", tmp_path / "in", shared_data_dir)
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  lines[5] = lines[5].replace(b",", b"\xff,", 1)
  with open(path, "wb") as f:
    f.write(b"\n".join(lines))
  with pytest.raises(base.BadRowError, match=r":6: not utf8"):
    _convert(layout, target, tmp_path / "out", skip=False)
  report = _convert(layout, target, tmp_path / "out", skip=True)
  assert report["splits"]["train"]["skipped_by_kind"] == {base.BAD_ENCODING: 1}


def _raw_case(tmp_path, layout, edit):
  folder = tmp_path / "in"
  os.makedirs(folder)
  if layout == "aliexpress_raw":
    users, items = aliexpress_raw_lines()
    users, items = edit(users, items)
    write_lines(folder / "us_user_train.csv", users)
    write_lines(folder / "us_item_train.csv", items)
  else:
    skeleton, common = aliccp_raw_lines()
    skeleton, common = edit(skeleton, common)
    write_lines(folder / "sample_skeleton_train.csv", skeleton)
    write_lines(folder / "common_features_train.csv", common)
  return str(folder)


def _feature_num_off(skeleton, common):
  skeleton[BAD_ROW] = _set(skeleton[BAD_ROW], 4, "99")
  return skeleton, common


def _no_value_part(skeleton, common):
  cells = skeleton[BAD_ROW].split(",")
  skeleton[BAD_ROW] = ",".join(cells[:4] + ["1", "205\x0212"])
  return skeleton, common


def _duplicate_common(skeleton, common):
  return skeleton, common + [common[1]]


def _duplicate_user(users, items):
  return users + [users[2]], items


def _bad_common_row(skeleton, common):
  key = common[0].split(",")[0]
  common[0] = f"{key},2,{feature_list([('101', 1, 1.0)])}"  # 1 token, not 2
  return skeleton, common


@pytest.mark.parametrize("layout, edit, kind, file, line", [
    ("aliccp_raw", _feature_num_off, base.BAD_TOKEN, "sample_skeleton",
     BAD_ROW + 1),
    ("aliccp_raw", _no_value_part, base.BAD_TOKEN, "sample_skeleton",
     BAD_ROW + 1),
    ("aliccp_raw", _duplicate_common, base.DUPLICATE_KEY, "common_features",
     6),
    ("aliccp_raw", _bad_common_row, base.BAD_TOKEN, "common_features", 1),
    ("aliexpress_raw", _duplicate_user, base.DUPLICATE_KEY, "us_user", 13),
])
def test_join_file_errors(tmp_path, layout, edit, kind, file, line):
  folder = _raw_case(tmp_path, layout, edit)
  with pytest.raises(base.BadRowError) as info:
    _convert(layout, folder, tmp_path / "out", skip=False)
  assert os.path.basename(info.value.path).startswith(file)
  assert (info.value.line, info.value.kind) == (line, kind)
  report = _convert(layout, folder, tmp_path / "out", skip=True)
  sources = report["sources"]["train"]
  if file.startswith("sample_skeleton"):
    assert report["splits"]["train"]["skipped_by_kind"] == {kind: 1}
  else:  # a bad join row: counted with its file; its impressions unjoined
    assert max(sources.get("common_rows_skipped_bad", 0),
               sources.get("user_rows_skipped_bad", 0)) == 1
  assert report["bad_row_examples"][0].split(":")[1] == str(line)


def test_unjoined_rows_are_counted_not_errors(tmp_path):
  def orphan_item(users, items):
    return users, items + ["999999" + items[0][4:]]
  folder = _raw_case(tmp_path, "aliexpress_raw", orphan_item)
  report = _convert("aliexpress_raw", folder, tmp_path / "out", skip=False)
  assert report["splits"]["valid"]["unjoined"] == 1  # the last line
  assert report["splits"]["valid"]["read"] == report["splits"]["valid"][
      "rows"] + 1

  def orphan_sample(skeleton, common):
    return [_set(skeleton[0], 3, "nokey")] + skeleton[1:], common
  shutil.rmtree(tmp_path / "in")
  folder = _raw_case(tmp_path, "aliccp_raw", orphan_sample)
  report = _convert("aliccp_raw", folder, tmp_path / "out2", skip=False)
  assert report["splits"]["train"]["unjoined"] == 1


def test_repeated_single_valued_field_in_valid(tmp_path, shared_data_dir):
  layout = "aliccp_text"
  target, path = _write("aliccp_text", tmp_path / "in", shared_data_dir)
  with open(path) as f:
    lines = f.read().splitlines()
  lines[-1] += ",205:7,205:8"  # 205 is single-valued in the train rows
  write_lines(path, lines)
  with pytest.raises(base.BadRowError, match=r"train\.txt:10: repeated"):
    _convert(layout, target, tmp_path / "out", skip=False)
  report = _convert(layout, target, tmp_path / "out", skip=True)
  assert report["splits"]["valid"]["skipped_by_kind"] == {
      base.REPEATED_FIELD: 1}


def test_missing_files_and_unknown_format_are_named(tmp_path):
  with pytest.raises(ValueError, match="valid formats: aliexpress_csv"):
    formats.get("criteo")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    formats.get("aliccp_text").sources(str(tmp_path / "nope.txt"))
  with pytest.raises(FileNotFoundError, match="sample_skeleton_train.csv"):
    formats.get("aliccp_raw").sources(str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"train\.csv"):
    formats.get("aliexpress_csv").sources(str(tmp_path))
