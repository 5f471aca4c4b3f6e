"""Tests of formats/census.py (and the seeded split of splitting.py) on the
first 3,000 lines of the real UCI census-income file: row accounting against
an independent reference of the seeded split, labels row for row against
the raw lines, no label leak (by name, and by per-feature lookup models whose
AUC would reach 1.0 on a leak, with a positive control), gzip = plain input,
bad rows, and `--split_seed` refused for a file-order format.

The slice is a test fixture in the repository (tests/data/samples/, 92 KB),
so these tests run on every clone.
"""

import gzip
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf import metrics
from pipelines import convert as convert_main
from pipelines.data import layout
from pipelines.data import records
from pipelines.data.formats import base
from pipelines.data.formats import census
from pipelines.data.formats import conversion
from pipelines.data.formats import lines
from tests.helpers.conversion import convert, sorted_records
from tests.helpers.flags import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))
# The first 3,000 lines of the real file (tests/data/samples/README.md).
CENSUS = os.path.join(ROOT, "tests", "data", "samples",
                      "census-income.test.head3000.gz")
SLICE_LINES = 3000


# --- references, independent of the converter ---
def _splitmix_split(seed, n, valid=0.2, test=0.2):
  """The documented seeded split in plain Python ints: [n] split names."""
  mask = (1 << 64) - 1

  def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)

  key, names = mix(seed & mask), []
  for i in range(n):
    u = (mix((key + (i + 1) * 0x9E3779B97F4A7C15) & mask) >> 11) / 2.0**53
    names.append("test" if u < test else "valid" if u < test + valid
                 else "train")
  return np.asarray(names)


def _fields(line):
  return [cell.strip() for cell in line.split(", ")]


def _raw_labels(lines_):
  """(income_50k, never_married) [n] int64 read off the raw lines."""
  income = [1 if line.endswith("50000+.") else 0 for line in lines_]
  never = [1 if _fields(line)[7] == "Never married" else 0 for line in lines_]
  return np.asarray(income), np.asarray(never)


def _records(out, split):
  """(schema, parsed records by record name, split_parsed labels)."""
  schema = F.FeatureSchema.load(str(out))
  parsed = tf.io.parse_example(layout.split_examples(str(out), split),
                               schema.parse_spec())
  _, labels, _ = schema.split_parsed(parsed)
  return (schema, {k: v.numpy() for k, v in parsed.items()},
          {k: v.numpy() for k, v in labels.items()})


def _lookup_auc(train_x, train_y, valid_x, valid_y, numerical):
  """AUC on valid of the best lookup model of one column fitted on train:
  the rank of the value (numerical), else the train mean label of the value
  (unseen values: the train mean); either direction counts."""
  if numerical:
    scores = np.asarray(valid_x, np.float64)
  else:
    keys, inverse = np.unique(train_x, return_inverse=True)
    means = np.bincount(inverse, weights=train_y) / np.bincount(inverse)
    pos = np.clip(np.searchsorted(keys, valid_x), 0, len(keys) - 1)
    scores = np.where(keys[pos] == valid_x, means[pos], np.mean(train_y))
  auc = metrics.auc(valid_y, scores)
  return max(auc, 1.0 - auc)


# --- fixtures ---
@pytest.fixture(scope="module")
def raw():
  """The first SLICE_LINES lines of the real file, without EOL."""
  with gzip.open(CENSUS, "rt", encoding="utf-8") as f:
    return [next(f).rstrip("\n") for _ in range(SLICE_LINES)]


def _write(path, lines_, compress):
  text = "".join(line + "\n" for line in lines_).encode("utf-8")
  with (gzip.open if compress else open)(path, "wb") as f:
    f.write(text)
  return str(path)


@pytest.fixture(scope="module")
def slice_gz(raw, tmp_path_factory):
  return _write(tmp_path_factory.mktemp("census") / "census-income.test.gz",
                raw, compress=True)


@pytest.fixture(scope="module")
def converted(slice_gz, tmp_path_factory):
  out = tmp_path_factory.mktemp("converted") / "out"
  return out, convert("census", slice_gz, out)


# --- tests ---
def test_category_id_is_a_fixed_non_negative_hash():
  want = int.from_bytes(hashlib.sha256(b"Never married").digest()[:8], "big")
  assert census.category_id("Never married") == want & (2**53 - 1)
  assert census.category_id("?") != census.category_id("Not in universe")
  assert all(0 <= census.category_id(v) < 2**53 for v in ("", "?", "0", "é"))


def test_gzip_lines_count_and_progress_in_compressed_bytes(slice_gz):
  assert lines.count_lines(slice_gz) == SLICE_LINES
  progress = lines.Progress("read", os.path.getsize(slice_gz), enabled=False)
  read = sum(len(batch) for _, batch in lines.read_batches(slice_gz, progress))
  assert read == SLICE_LINES
  assert progress.bytes == os.path.getsize(slice_gz)


def test_every_row_lands_in_the_split_its_seed_gives(converted, raw):
  out, report = converted
  expected = _splitmix_split(42, SLICE_LINES)
  assert report["split"] == {"rule": "seeded_rows", "seed": 42,
                             "valid_fraction": 0.2, "test_fraction": 0.2}
  assert sum(report["splits"][s]["rows"] for s in F.SPLITS) == SLICE_LINES
  for split in F.SPLITS:
    rows = [line for line, s in zip(raw, expected) if s == split]
    counts = report["splits"][split]
    assert counts["rows"] == counts["read"] == len(rows) > 400, split
    # Row for row: the written records are these raw rows, in file order.
    _, got, _ = _records(out, split)
    np.testing.assert_array_equal(
        got["age"], np.float32([float(_fields(r)[0]) for r in rows]))
    np.testing.assert_array_equal(
        got["education"],
        [census.category_id(_fields(r)[4]) for r in rows])


def test_the_split_is_reproducible_and_moves_with_the_seed(converted,
                                                           slice_gz, tmp_path):
  out, report = converted
  again = convert("census", slice_gz, tmp_path / "again", split_seed=42)
  other = convert("census", slice_gz, tmp_path / "other", split_seed=7)
  for split in F.SPLITS:
    assert sorted_records(out, split) == sorted_records(tmp_path / "again",
                                                        split)
    assert again["splits"][split] == report["splits"][split]
  expected = _splitmix_split(7, SLICE_LINES)
  assert [other["splits"][s]["rows"] for s in F.SPLITS] == [
      int(np.sum(expected == s)) for s in F.SPLITS]
  assert sorted_records(out, "test") != sorted_records(tmp_path / "other",
                                                       "test")
  # --valid_fraction moves rows between train and valid only; test stays.
  less = convert("census", slice_gz, tmp_path / "less", valid_fraction=0.1)
  assert less["splits"]["valid"]["rows"] == int(np.sum(
      _splitmix_split(42, SLICE_LINES, valid=0.1) == "valid"))
  assert sorted_records(out, "test") == sorted_records(tmp_path / "less",
                                                       "test")


def test_statistics_come_from_the_train_rows_only(converted, raw):
  out, _ = converted
  schema = F.FeatureSchema.load(str(out))
  train = [_fields(r) for r, s in zip(raw, _splitmix_split(42, SLICE_LINES))
           if s == "train"]
  for feature in schema.categorical:
    column = census.COLUMNS.index(feature.name)
    assert feature.encoding == "vocabulary"
    assert set(feature.vocabulary) == {census.category_id(r[column])
                                       for r in train}, feature.name
  for feature in schema.numerical:
    values = np.asarray([float(r[census.COLUMNS.index(feature.name)])
                         for r in train])
    assert feature.mean == pytest.approx(values.mean(), rel=1e-9)
    assert feature.std == pytest.approx(values.std(), rel=1e-9)
  age_all = np.mean([float(_fields(r)[0]) for r in raw])
  assert schema.numerical[0].name == "age"
  assert schema.numerical[0].mean != pytest.approx(age_all, rel=1e-6)


def test_labels_equal_the_raw_lines_row_for_row(converted, raw):
  out, report = converted
  expected = _splitmix_split(42, SLICE_LINES)
  income, never = _raw_labels(raw)
  for split in F.SPLITS:
    rows = expected == split
    _, got, labels = _records(out, split)
    np.testing.assert_array_equal(got["income_50k"], income[rows])
    np.testing.assert_array_equal(got["never_married"], never[rows])
    # In memory the first task's label is keyed click, the second conversion.
    np.testing.assert_array_equal(labels[F.CLICK], income[rows])
    np.testing.assert_array_equal(labels[F.CONVERSION], never[rows])
    counts = report["splits"][split]["labels"]
    assert counts["income_50k"]["positives"] == income[rows].sum()
    assert counts["never_married"]["positives"] == never[rows].sum()
    assert "click_rate" not in report["splits"][split]
  # Independent labels: income without never-married is kept, not dropped.
  assert np.sum((income == 1) & (never == 0)) > 0
  assert sum(report["splits"][s]["read"] for s in F.SPLITS) == SLICE_LINES


def test_no_label_or_weight_column_is_a_feature(converted):
  out, report = converted
  schema = F.FeatureSchema.load(str(out))
  assert schema.labels == ("income_50k", "never_married")
  assert schema.label_relation == F.INDEPENDENT
  assert report["labels"] == list(schema.labels)
  names = set(schema.feature_names)
  assert not names & {"marital_stat", "income_50k", "instance_weight",
                      "never_married"}
  assert names == set(census.COLUMNS) - {"marital_stat", "income_50k",
                                         "instance_weight"}
  assert {f.name for f in schema.numerical} == census.CONTINUOUS
  with open(os.path.join(out, "schema.json")) as f:
    assert json.load(f)["labels"] == ["income_50k", "never_married"]


def test_no_feature_predicts_a_label_like_a_leak(converted, raw):
  out, _ = converted
  schema, train, _ = _records(out, "train")
  _, valid, _ = _records(out, "valid")
  numerical = {f.name for f in schema.numerical}
  for name in schema.feature_names:
    for label in schema.labels:
      auc = _lookup_auc(train[name], train[label], valid[name], valid[label],
                        name in numerical)
      assert auc < 0.99, (name, label, auc)
  # Positive control: the same check on the raw marital_stat column (the
  # source of never_married) reaches AUC 1, so the check can fail.
  split = _splitmix_split(42, SLICE_LINES)
  marital = np.asarray([_fields(r)[7] for r in raw])
  auc = _lookup_auc(marital[split == "train"], train["never_married"],
                    marital[split == "valid"], valid["never_married"], False)
  assert auc >= 0.999


def test_gzip_plain_and_folder_input_give_the_same_output(converted, raw,
                                                          tmp_path):
  out, report = converted
  plain = _write(tmp_path / "census-income.test", raw, compress=False)
  folder = tmp_path / "input"
  folder.mkdir()
  _write(folder / "census-income.test.gz", raw, compress=True)
  (folder / "census-income.names").write_text("not rows\n")
  for name, path in (("plain", plain), ("from_folder", folder)):
    got = convert("census", path, tmp_path / name)
    assert got["splits"] == report["splits"]
    with open(tmp_path / name / "schema.json") as f, \
        open(out / "schema.json") as g:
      assert json.load(f) == json.load(g)
    for split in F.SPLITS:
      assert sorted_records(tmp_path / name, split) == sorted_records(out,
                                                                      split)


def _damaged(raw):
  """The slice with a short row (line 5), an unknown income (line 9) and a
  non-numeric age (line 12)."""
  lines_ = list(raw[:20])
  lines_[4] = lines_[4].rsplit(", ", 1)[0]
  lines_[8] = lines_[8].rsplit(", ", 1)[0] + ", 50000."
  lines_[11] = "old, " + lines_[11].split(", ", 1)[1]
  return lines_


def test_bad_rows_name_file_and_line_or_are_skipped_and_counted(raw,
                                                                tmp_path):
  path = _write(tmp_path / "census-income.test.gz", _damaged(raw), True)
  with pytest.raises(base.BadRowError, match=rf"{path}:5: wrong column count: "
                     r"41 columns, expected 42") as err:
    convert("census", path, tmp_path / "out")
  assert err.value.kind == base.WRONG_COLUMNS
  report = convert("census", path, tmp_path / "skip", skip_bad_rows=True)
  counts = [report["splits"][s] for s in F.SPLITS]
  skipped = {}
  for c in counts:
    for kind, n in c["skipped_by_kind"].items():
      skipped[kind] = skipped.get(kind, 0) + n
  assert skipped == {base.WRONG_COLUMNS: 1, base.BAD_LABEL: 1,
                     base.NON_NUMERIC: 1}
  assert sum(c["rows"] for c in counts) == 17
  assert sum(c["read"] for c in counts) == 20
  examples = "\n".join(report["bad_row_examples"])
  assert f"{path}:9: {base.BAD_LABEL}: column 42 (income_50k) is " \
         "'50000.'; valid: ['- 50000.', '50000+.']" in examples
  assert f"{path}:12: {base.NON_NUMERIC}: column 1 (age) is 'old'" in examples
  only_label = _write(tmp_path / "label.gz", _damaged(raw)[6:10], True)
  with pytest.raises(base.BadRowError, match=rf"{only_label}:3: unknown "
                     r"label value: column 42 \(income_50k\) is '50000.'"):
    convert("census", only_label, tmp_path / "label")


def test_split_seed_is_refused_for_a_file_order_format(shared_data_dir,
                                                       tmp_path):
  path = os.path.join(shared_data_dir, "small.txt")
  with pytest.raises(ValueError) as err:
    convert("aliccp_text", path, tmp_path / "out", split_seed=7)
  message = str(err.value)
  assert "\n" not in message
  assert message.startswith("--split_seed applies to formats split by seed "
                            "(census), not to --format=aliccp_text")
  assert not os.path.exists(tmp_path / "out")
  with pytest.raises(SystemExit, match="error: --split_seed applies"):
    run_main(convert_main, ["--format=aliccp_text", f"--input={path}",
                            f"--output_dir={tmp_path / 'cli'}",
                            "--split_seed=7", "--noprogress"], "convert")
  with pytest.raises(ValueError, match="must be >= 0 and leave rows"):
    conversion.convert("census", CENSUS, str(tmp_path / "big"),
                       conversion.Options(valid_fraction=0.9, progress=False))


def test_the_command_converts_and_names_the_census_preset(slice_gz, tmp_path,
                                                          capsys):
  out = tmp_path / "cli"
  run_main(convert_main, ["--format=census", f"--input={slice_gz}",
                          f"--output_dir={out}", "--noprogress"], "convert")
  printed = capsys.readouterr().out
  assert f"pipelines.train --preset=census --data_dir={out}" in printed
  schema = F.FeatureSchema.load(str(out))
  assert schema.labels == ("income_50k", "never_married")
