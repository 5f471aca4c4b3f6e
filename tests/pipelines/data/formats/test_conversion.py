"""Tests of formats/conversion.py: raw layouts -> TFRecords + schema + data
report (round trips, output folder rules), damaged files, the non-finite
policy at conversion (file:line, data report), and a ram:// output."""

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from pipelines.data import files
from pipelines.data import reader
from pipelines.data import layout
from pipelines.data import records
from pipelines.data.formats import base
from pipelines.data.formats import conversion
from tests.helpers.conversion import convert
from tests.helpers.samples import (aliccp_raw_lines, aliexpress_raw_lines,
                                   write_aliccp_raw, write_aliexpress_raw)


def _rows(out, split):
  """Every record of a split, in file order, as numpy (lists for ragged)."""
  schema = F.FeatureSchema.load(str(out))
  batches = list(reader.make_dataset(str(out), split, schema, 4096,
                                         training=False))
  features = {k: (v.to_list() if isinstance(v, tf.RaggedTensor) else
                  v.numpy()) for k, v in batches[0][0].items()}
  labels = {k: v.numpy() for k, v in batches[0][1].items()}
  return schema, features, labels


def test_aliexpress_raw_round_trip(tmp_path):
  folder = write_aliexpress_raw(tmp_path / "raw")
  report = convert("aliexpress_raw", folder, tmp_path / "out")
  users, items = aliexpress_raw_lines(seed=0)
  users = {u.split(",")[0]: u.split(",") for u in users}
  items = [i.split(",") for i in items]
  boundary = len(items) - round(0.1 * len(items))
  with open(tmp_path / "out" / "data_report.json") as f:
    assert json.load(f)["splits"]["train"]["rows"] == boundary
  assert report["splits"]["valid"]["rows"] == len(items) - boundary
  assert report["splits"]["test"]["rows"] == len(items)
  schema, train, labels = _rows(tmp_path / "out", "train")
  _, valid, valid_labels = _rows(tmp_path / "out", "valid")
  # Valid = the END of the train files, in order.
  for split_items, feats, labs in ((items[:boundary], train, labels),
                                   (items[boundary:], valid, valid_labels)):
    np.testing.assert_array_equal(
        feats["categorical_2"], [int(users[i[0]][2]) for i in split_items])
    np.testing.assert_array_equal(
        feats["categorical_16"], [int(i[41]) for i in split_items])
    np.testing.assert_array_equal(
        feats["numerical_1"],
        np.float32([float(users[i[0]][8]) for i in split_items]))
    np.testing.assert_array_equal(labs["click"],
                                  [int(i[48]) >= 1 for i in split_items])
    np.testing.assert_array_equal(labs["conversion"],
                                  [int(i[48]) == 2 for i in split_items])
  # Statistics from the train rows only.
  expected = np.mean([float(i[1]) for i in items[:boundary]])
  numerical_24 = {f.name: f for f in schema.numerical}["numerical_24"]
  assert numerical_24.mean == pytest.approx(expected)
  vocab = {f.name: f for f in schema.categorical}["categorical_10"].vocabulary
  assert set(vocab) == {int(i[18]) for i in items[:boundary]}
  assert report["fields"]["categorical_10"]["oov_rate"]["train"] == 0.0


def test_aliccp_raw_round_trip_keeps_lists(tmp_path):
  folder = write_aliccp_raw(tmp_path / "raw", cwc_every=9)
  report = convert("aliccp_raw", folder, tmp_path / "out")
  skeleton, common = aliccp_raw_lines(seed=0, cwc_every=9)
  common = {c.split(",")[0]: c.split(",")[2] for c in common}
  expected = []
  for line in skeleton:
    cells = line.split(",")
    if cells[1] == "0" and cells[2] == "1":
      continue  # dropped by default
    fields = {}
    for token in common[cells[3]].split("\x01") + cells[5].split("\x01"):
      field, rest = token.split("\x02")
      fields.setdefault("f" + field, []).append(int(rest.split("\x03")[0]))
    expected.append(fields)
  schema, train, _ = _rows(tmp_path / "out", "train")
  _, valid, _ = _rows(tmp_path / "out", "valid")
  multivalent = {f.name for f in schema.categorical if f.multivalent}
  assert multivalent == {"f109_14", "f110_14", "f127_14", "f150_14", "f210"}
  got = [{k: (train[k][i] if k in multivalent else [train[k][i]])
          for k in expected[0]} for i in range(len(train["f210"]))]
  got += [{k: (valid[k][i] if k in multivalent else [valid[k][i]])
           for k in expected[0]} for i in range(len(valid["f210"]))]
  assert got == expected
  train_files = [report["splits"][s] for s in ("train", "valid")]
  assert sum(s["dropped_conversion_without_click"] for s in train_files) == \
      sum(s["conversions_without_click"] for s in train_files) == 4
  kept = convert("aliccp_raw", folder, tmp_path / "kept",
                  keep_conversions_without_click=True)
  assert kept["splits"]["train"]["rows"] + kept["splits"]["valid"]["rows"] \
      == len(skeleton)
  lengths = report["fields"]["f210"]["mean_list_length"]["train"]
  assert 1.0 < lengths < 2.0


def test_output_folder_rules(tmp_path, shared_data_dir):
  path = os.path.join(shared_data_dir, "small.txt")
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "x").write_text("x")
  with pytest.raises(FileExistsError, match="--overwrite"):
    convert("aliccp_text", path, tmp_path / "out")
  convert("aliccp_text", path, tmp_path / "out", overwrite=True)
  assert not (tmp_path / "out" / "x").exists()
  assert records.list_shards(str(tmp_path / "out"), "valid")
  with pytest.raises(ValueError, match="valid_fraction"):
    convert("aliccp_text", path, tmp_path / "o2", valid_fraction=1.0)


# --- damaged and empty files --------------------------------------------------

CONVERT_ERRORS = (base.BadRowError, ValueError, FileNotFoundError)


SAMPLES = {"aliexpress_csv": ("aliexpress_train_sample.csv", True),
           "aliccp_csv": ("ali_ccp_train_sample.csv", True),
           "aliccp_text": ("small.txt", False)}  # file, has a header


def _mutate(line: bytes, how: int, cut: int, noise: bytes) -> bytes:
  """A real line (how 0), cut short (1), noise inserted (2), or noise (3)."""
  if how == 0:
    return line
  if how == 1:
    return line[: cut % max(len(line), 1)]
  if how == 2:
    at = cut % max(len(line), 1)
    return line[:at] + noise + line[at:]
  return noise


@pytest.mark.reliability
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(layout=st.sampled_from(sorted(SAMPLES)), skip=st.booleans(),
       lines=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 3),
                                st.integers(0, 10_000),
                                st.binary(max_size=6).filter(
                                    lambda b: b"\n" not in b and b"\r" not in b)),
                      max_size=8))
def test_real_lines_and_damaged_ones_convert_or_fail_clearly(
    tmp_path, shared_data_dir, layout, skip, lines):
  name, header = SAMPLES[layout]
  with open(os.path.join(shared_data_dir, name), "rb") as f:
    source = f.read().split(b"\n")
  head, pool = (source[:1], source[1:11]) if header else ([], source[:10])
  body = [_mutate(pool[k % len(pool)], how, cut, noise)
          for k, how, cut, noise in lines]
  path = tmp_path / layout / ("train.txt" if layout == "aliccp_text"
                              else "train.csv")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b"\n".join(head + body))
  out = tmp_path / layout / "out"
  options = conversion.Options(progress=False, skip_bad_rows=skip,
                               overwrite=True, valid_fraction=0.0)
  pristine = sum(how == 0 for _, how, _, _ in lines)
  try:
    report = conversion.convert(layout, str(path), str(out), options,
                                log=lambda _: None)
  except CONVERT_ERRORS as err:
    assert str(err)
    assert not os.path.exists(str(out) + ".partial")
    # Skipping bad rows, a file with one real line always converts.
    assert not (skip and pristine), err
    return
  train = report["splits"]["train"]
  assert train["rows"] >= pristine  # every real line is kept
  assert train["read"] == len(body) - report["blank_lines"].get("train", 0)
  if not skip:
    assert train["skipped_bad_rows"] == 0
  schema = F.FeatureSchema.load(str(out))  # a trainable folder
  assert schema.feature_names


@pytest.mark.reliability
@pytest.mark.parametrize("layout, name", [("aliexpress_csv", "train.csv"),
                                          ("aliccp_csv", "train.csv"),
                                          ("aliccp_text", "train.txt")])
def test_an_empty_file_is_a_clear_error(tmp_path, layout, name):
  path = tmp_path / name
  path.write_bytes(b"")
  with pytest.raises(ValueError, match=r"header|no usable rows|rows"):
    conversion.convert(layout, str(path), str(tmp_path / "out"),
                       conversion.Options(progress=False), log=lambda _: None)
  assert not os.path.exists(tmp_path / "out")


# --- the non-finite policy ----------------------------------------------------

def _csv_with_non_finite(tmp_path, shared_data_dir):
  lines = open(os.path.join(shared_data_dir, "aliexpress_train_sample.csv")
               ).read().split("\n")
  for line, (column, value) in ((4, (20, "nan")), (6, (21, "-inf")),
                                (7, (22, "1e999"))):
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
  path = tmp_path / "train.csv"
  path.write_text("\n".join(lines))
  return str(path)


@pytest.mark.reliability
def test_converter_error_policy_names_file_line_and_field(tmp_path,
                                                         shared_data_dir):
  path = _csv_with_non_finite(tmp_path, shared_data_dir)
  options = conversion.Options(progress=False)
  with pytest.raises(base.BadRowError) as info:
    conversion.convert("aliexpress_csv", path, str(tmp_path / "out"), options,
                       log=lambda _: None)
  assert (info.value.line, info.value.kind) == (4, base.NON_FINITE)
  assert f"{path}:4:" in str(info.value)
  assert "(numerical_4) is 'nan'" in str(info.value)
  assert "--non_finite=replace" in str(info.value)
  assert not os.path.exists(tmp_path / "out")
  skipping = conversion.Options(progress=False, skip_bad_rows=True)
  report = conversion.convert("aliexpress_csv", path, str(tmp_path / "skip"),
                              skipping, log=lambda _: None)
  assert report["splits"]["train"]["skipped_by_kind"] == {base.NON_FINITE: 3}
  assert report["splits"]["train"]["rows"] == 87


@pytest.mark.reliability
def test_converter_replace_policy_writes_the_default_and_reports(
    tmp_path, shared_data_dir):
  path = _csv_with_non_finite(tmp_path, shared_data_dir)
  options = conversion.Options(progress=False, non_finite="replace")
  report = conversion.convert("aliexpress_csv", path, str(tmp_path / "out"),
                              options, log=lambda _: None)
  train = report["splits"]["train"]
  assert train["rows"] == 90 and train["skipped_bad_rows"] == 0
  assert train["non_finite_replaced"] == 3
  assert train["non_finite_replaced_by_field"] == {
      "numerical_4": 1, "numerical_5": 1, "numerical_6": 1}
  with open(tmp_path / "out" / "data_report.json") as f:
    assert json.load(f)["splits"]["train"]["non_finite_replaced"] == 3
  schema = F.FeatureSchema.load(str(tmp_path / "out"))
  values = tf.io.parse_example(
      layout.split_examples(str(tmp_path / "out"), "train"),
      schema.parse_spec())["numerical_4"].numpy()
  assert np.isfinite(values).all()
  assert values[2] == F.NumericalFeature.default  # data line 3 = file line 4
  with pytest.raises(ValueError, match="--non_finite='zero' is not valid"):
    conversion.Options(non_finite="zero").validate()


# --- a non-local file system (ram://) -----------------------------------------

def test_converter_writes_to_ram(ram_dir, shared_data_dir):
  out = f"{ram_dir}/converted"
  options = conversion.Options(progress=False, valid_fraction=0.2)
  report = conversion.convert(
      "aliccp_text", os.path.join(shared_data_dir, "small.txt"), out, options,
      log=lambda _: None)
  assert files.list_dir(ram_dir) == ["converted"]
  with tf.io.gfile.GFile(f"{out}/data_report.json") as f:
    assert json.load(f)["splits"] == report["splits"]
  records.check_manifest(out, ("train", "valid"))
  schema = F.FeatureSchema.load(out)
  ds = reader.make_dataset(out, "train", schema, 100, training=False)
  _, labels = next(iter(ds))
  assert len(labels[F.CLICK]) == report["splits"]["train"]["rows"] == 8
  with pytest.raises(FileExistsError, match="--overwrite"):
    conversion.convert("aliccp_text", os.path.join(shared_data_dir,
                                                   "small.txt"), out, options)
