"""Fuzzing the parsers and the serving signature with hypothesis.

Arbitrary bytes, truncated records, wrong types, empty files and enormous
values go into the CSV table parser, the Ali-CCP readers, the converter and
`serving_default`. Each must end in a clear error or in rows equal to an
independent reference parse (never a hang, a crash of another kind, or a
silently wrong row). Examples are few and bounded (`max_examples`,
`deadline`) so the suite stays quick.
"""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import models
from export import serving
from pipelines.data import synthetic
from pipelines.training import train_lib
from pipelines.data.formats import aliccp_text
from pipelines.data.formats import base
from pipelines.data.formats import conversion
from pipelines.data.formats import table

pytestmark = pytest.mark.reliability

FUZZ = settings(max_examples=40, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])

# --- the table parser (AliExpress CSVs, Ali-CCP CSV) -------------------------

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


def _cells(line: bytes):
  """The comma-separated cells of a line, 'blank', or None (not UTF-8)."""
  try:
    text = line.decode("utf-8")
  except UnicodeDecodeError:
    return None
  return text.split(",") if text.strip() else "blank"


def _reference(line: bytes, replace: bool):
  """(id, x, click) of a good row, 'blank', or None for a bad row."""
  cells = _cells(line)
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


# --- the Ali-CCP text reader (PaddleRec layout) -----------------------------

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
  cells = _cells(line)
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


# --- whole files into the converter ---------------------------------------------

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


def test_an_enormous_value_is_a_bad_row_not_a_crash(tmp_path):
  huge = "9" * 100_000
  raw = [f"{huge},0.5,1".encode(), f"1,{huge},1".encode(),
         f"1,0.{huge},0".encode()]
  parsed = table.parse(raw, COLUMNS, "f.csv", 2, base.BadRows(skip=True))
  assert [i for i, _ in parsed.skipped] == [0, 1]  # id beyond int64; x = inf
  assert parsed.floats["x"].tolist() == [1.0]  # 0.999... rounds to 1.0


# --- serving_default --------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """An (untrained) tiny model exported once: (serve, model, schema)."""
  config = experiments.get_preset("tiny")
  schema = synthetic.synthetic_schema(config.data.synthetic)
  model = models.build_model(config, schema)
  model(schema.default_features(), training=False)
  path = str(tmp_path_factory.mktemp("export") / "1")
  serving.save(model, schema, path)
  loaded = tf.saved_model.load(path)
  return loaded.signatures[serving.SIGNATURE_EXAMPLES], model, schema


def _outputs_ok(outputs, rows):
  for key in F.SERVING_OUTPUTS:
    values = outputs[key].numpy()
    assert values.shape == (rows,)
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()


@FUZZ
@given(batch=st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_serving_arbitrary_bytes_fail_clearly_or_serve(exported, batch):
  serve, _, _ = exported
  try:
    outputs = serve(examples=tf.constant(batch))
  except tf.errors.InvalidArgumentError as err:
    assert "parse" in str(err).lower() or "feature" in str(err).lower()
    return
  except UnicodeDecodeError:
    # TensorFlow's Python layer cannot decode an InvalidArgumentError whose
    # message quotes non-UTF-8 request bytes; the request still fails (TF
    # Serving answers INVALID_ARGUMENT).
    return
  _outputs_ok(outputs, len(batch))


def _value(kind):
  return {"id": st.integers(-2**63, 2**63 - 1).map(
      lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))),
          "float": st.floats(width=32, allow_nan=True, allow_infinity=True).map(
      lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))),
          "two": st.just(tf.train.Feature(
              int64_list=tf.train.Int64List(value=[1, 2]))),
          "bytes": st.binary(max_size=8).map(
      lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])))
          }[kind]


@st.composite
def _examples(draw, names):
  feature = {}
  for name in names:
    kind = draw(st.sampled_from(["missing", "ok", "ok", "id", "float", "two",
                                 "bytes"]))
    if kind == "ok":
      kind = "id" if name.startswith("categorical") else "float"
    if kind != "missing":
      feature[name] = draw(_value(kind))
  return tf.train.Example(features=tf.train.Features(feature=feature))


@FUZZ
@given(data=st.data())
def test_serving_examples_give_the_model_outputs_or_a_named_error(exported,
                                                                  data):
  serve, model, schema = exported
  example = data.draw(_examples(schema.feature_names))
  try:
    outputs = serve(examples=tf.constant([example.SerializeToString()]))
  except tf.errors.InvalidArgumentError as err:
    fields = example.features.feature
    named = [n for n in schema.feature_names if n in str(err)]
    assert named, str(err)[:300]
    name = named[0]
    wrong_type = (fields[name].WhichOneof("kind") !=
                  ("int64_list" if name.startswith("categorical")
                   else "float_list"))
    values = (fields[name].float_list.value
              if fields[name].WhichOneof("kind") == "float_list" else [0])
    assert (wrong_type or len(getattr(fields[name], fields[name].WhichOneof(
        "kind")).value) != 1 or not np.isfinite(values).all()), str(err)[:300]
    return
  _outputs_ok(outputs, 1)
  parsed = tf.io.parse_example([example.SerializeToString()],
                               schema.parse_spec(with_labels=False))
  expected = model(parsed, training=False)
  for key in F.SERVING_OUTPUTS:  # the documented defaults, no silent drift
    np.testing.assert_allclose(outputs[key].numpy(), expected[key].numpy(),
                               rtol=1e-5, atol=1e-6)
