"""`--format=tfds`: a prepared TFDS dataset converts exactly like its raw files.

The real sample rows (../shared/data) are rewritten in the raw Tianchi layouts
the builders read, each builder is prepared from them, and its conversion is
compared with the raw-layout conversion of the same files: same vocabularies
and normalisation, same records in every split.
"""

import collections
import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from adaftr_tf import features as F
from pipelines.data import records
from pipelines.data.formats import aliexpress_raw
from pipelines.data.formats import base
from pipelines.data.formats import conversion
from pipelines.data.formats import tfds_dataset
from pipelines.data.tfds import common

from tests.helpers.samples import feature_list, write_lines

# Ali-CCP user-side fields: they go to the common features file.
COMMON = {"101", "121", "122", "124", "125", "126", "127", "128", "129",
          "109_14", "110_14", "127_14", "150_14"}


def aliexpress_from_sample(shared_data_dir, folder, test_rows=30):
  """us_{user,item}_{train,test}.csv holding the rows of the MTReclib sample
  (shuffled: the file lists its clicks first)."""
  os.makedirs(folder)
  with open(os.path.join(shared_data_dir, "aliexpress_train_sample.csv")) as f:
    header, *rows = [line.split(",") for line in f.read().splitlines()]
  rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
  col = {name: j for j, name in enumerate(header)}
  cat = iter(f"categorical_{i}" for i in range(1, 17))
  num = iter(f"numerical_{i}" for i in range(1, 64))
  # The raw column order (aliexpress_raw): user then item features.
  user = ([next(cat) for _ in range(7)] + [next(num) for _ in range(23)]
          + [next(cat) for _ in range(2)])
  item = [next(cat) if j in aliexpress_raw.ITEM_CATEGORICAL else next(num)
          for j in range(2, 49)]
  for split, part in (("train", rows[:-test_rows]),
                      ("test", rows[-test_rows:])):
    users, items = {}, []
    for r in part:
      users[r[0]] = ",".join([r[0], *(r[col[k]] for k in user)])
      label = int(r[col["click"]]) + int(r[col["conversion"]])
      items.append(",".join([r[0], *(r[col[k]] for k in item), str(label)]))
    write_lines(os.path.join(folder, f"us_user_{split}.csv"), users.values())
    write_lines(os.path.join(folder, f"us_item_{split}.csv"), items)
  return str(folder)


def aliccp_from_sample(shared_data_dir, folder, test_rows=3):
  """sample_skeleton_* + common_features_* holding the rows of small.txt."""
  os.makedirs(folder)
  with open(os.path.join(shared_data_dir, "small.txt")) as f:
    rows = [line.split(",") for line in f.read().splitlines()]
  for split, part in (("train", rows[:-test_rows]),
                      ("test", rows[-test_rows:])):
    skeleton, commons = [], {}
    for r in part:
      tokens = [tuple(t.split(":")) + ("1.0",) for t in r[3:]]
      user = [t for t in tokens if t[0] in COMMON]
      key, _ = commons.setdefault(feature_list(user),
                                  (f"c{len(commons)}", len(user)))
      own = [t for t in tokens if t[0] not in COMMON]
      skeleton.append(f"{r[0]},{r[1]},{r[2]},{key},{len(own)},"
                      f"{feature_list(own)}")
    write_lines(os.path.join(folder, f"sample_skeleton_{split}.csv"), skeleton)
    write_lines(os.path.join(folder, f"common_features_{split}.csv"),
                [f"{key},{n},{text}" for text, (key, n) in commons.items()])
  return str(folder)


def _prepare(name, manual_dir, data_dir):
  tfds.builder(name, data_dir=str(data_dir)).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))


def _convert(layout, path, out, **options):
  return conversion.convert(layout, str(path), str(out), conversion.Options(
      progress=False, **options), log=lambda _: None)


def _rows(data_dir, split):
  """Sorted records of a split, each as sorted (key, values) pairs."""
  rows = []
  for record in tf.data.TFRecordDataset(records.list_shards(data_dir, split)):
    example = tf.train.Example.FromString(record.numpy())
    rows.append(tuple(sorted(
        (k, tuple(v.int64_list.value) or tuple(v.float_list.value))
        for k, v in example.features.feature.items())))
  return sorted(rows)


def _assert_same_conversion(tfds_out, raw_out, tfds_report, raw_report):
  with open(os.path.join(tfds_out, F.SCHEMA_FILE)) as f:
    got = json.load(f)
  with open(os.path.join(raw_out, F.SCHEMA_FILE)) as f:
    want = json.load(f)
  assert got["categorical"] == want["categorical"]
  # TFDS stores float32 (as the records do): the moments move in the 8th digit.
  assert [f["name"] for f in got["numerical"]] == [
      f["name"] for f in want["numerical"]]
  for g, w in zip(got["numerical"], want["numerical"]):
    assert g["mean"] == pytest.approx(w["mean"], rel=1e-6, abs=1e-9)
    assert g["std"] == pytest.approx(w["std"], rel=1e-6)
  for split in F.SPLITS:
    assert tfds_report["splits"][split]["rows"] == \
        raw_report["splits"][split]["rows"] > 0
    assert _rows(tfds_out, split) == _rows(raw_out, split), split


def test_aliexpress_tfds_converts_like_raw_and_trains(tmp_path,
                                                      shared_data_dir):
  from adaftr_tf import experiments
  from pipelines.training import train_lib
  raw = aliexpress_from_sample(shared_data_dir, tmp_path / "manual")
  _prepare("aliexpress/us", raw, tmp_path / "tfds")
  report = _convert("tfds", "aliexpress/us", tmp_path / "out",
                    valid_fraction=0.0, tfds_data_dir=str(tmp_path / "tfds"))
  assert report["input"].startswith("tfds:aliexpress/us (")
  want = _convert("aliexpress_raw", raw, tmp_path / "raw",
                  valid_fraction=common.VALID_FRACTION)
  _assert_same_conversion(str(tmp_path / "out"), str(tmp_path / "raw"),
                          report, want)
  config = experiments.config_of("tiny", [
      "train.batch_size=16", "train.eval_batch_size=64",
      "train.steps_per_epoch=2", "train.steps_per_execution=1"])
  result = train_lib.train(config, str(tmp_path / "model"),
                           str(tmp_path / "out"), verbose=0, log=lambda _: None)
  assert 0 < report["splits"]["valid"]["clicks"] < result["valid"][
      "num_examples"] == report["splits"]["valid"]["rows"]
  assert np.isfinite(result["valid"]["ctr_logloss"])


def _main(argv):
  from pipelines import convert
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["convert"] + argv)
    return convert.main(["convert"])


def test_aliccp_tfds_converts_like_raw_from_the_command_line(tmp_path,
                                                             shared_data_dir):
  raw = aliccp_from_sample(shared_data_dir, tmp_path / "manual")
  _prepare("ali_ccp/raw", raw, tmp_path / "tfds")
  _main(["--format=tfds", "--input=ali_ccp", f"--output_dir={tmp_path / 'out'}",
         f"--tfds_data_dir={tmp_path / 'tfds'}", "--noprogress"])
  with open(tmp_path / "out" / "data_report.json") as f:
    report = json.load(f)
  want = _convert("aliccp_raw", raw, tmp_path / "raw",
                  valid_fraction=common.VALID_FRACTION)
  _assert_same_conversion(str(tmp_path / "out"), str(tmp_path / "raw"),
                          report, want)
  schema = F.FeatureSchema.load(str(tmp_path / "out"))
  assert schema.has_multivalent and "f150_14" in schema.feature_names
  with pytest.raises(SystemExit, match="--valid_fraction=0.2 does not apply"):
    _main(["--format=tfds", "--input=ali_ccp", "--valid_fraction=0.2",
           f"--output_dir={tmp_path / 'o2'}",
           f"--tfds_data_dir={tmp_path / 'tfds'}"])


def test_unknown_and_unprepared_datasets_are_named(tmp_path):
  options = {"valid_fraction": 0.0, "tfds_data_dir": str(tmp_path / "tfds")}
  with pytest.raises(ValueError, match=r"'mnist' is not a TFDS dataset .*"
                     "valid: aliexpress/nl, .*ali_ccp/raw"):
    _convert("tfds", "mnist", tmp_path / "out", **options)
  with pytest.raises(FileNotFoundError, match="aliexpress/fr is not prepared "
                     "in .*download_and_prepare.*manual_dir"):
    _convert("tfds", "aliexpress/fr", tmp_path / "out", **options)
  with pytest.raises(ValueError, match="--tfds_data_dir applies to "
                     "--format=tfds only"):
    _convert("aliccp_text", tmp_path, tmp_path / "out", **options)
  assert not os.path.exists(tmp_path / "out")


def _examples(click, values, ids):
  return {"click": np.asarray(click), "conversion": np.zeros(len(click), int),
          "n": np.asarray(values, np.float32), "a": np.asarray(ids)}


FIELDS = common.ConverterFields(("a",), numerical=("n",), missing_id=-1)


def test_bad_examples_are_bad_rows_and_missing_ids_absent():
  columns = _examples([0, 2, 1, 0], [0.5, 0.1, np.nan, 0.3], [7, 8, 9, -1])
  with pytest.raises(base.BadRowError, match="ali/x/train:12: unknown label"):
    tfds_dataset.examples_block(columns, FIELDS, "ali/x/train", 10,
                                base.BadRows(skip=False))
  errors = base.BadRows(skip=True)
  block = tfds_dataset.examples_block(columns, FIELDS, "ali/x/train", 10,
                                      errors)
  assert collections.Counter(k for _, k in block.skipped) == {
      base.BAD_LABEL: 1, base.NON_FINITE: 1}
  assert block.index.tolist() == [10, 13]
  assert block.lists["a"].values.tolist() == [7]  # -1: missing
  assert block.lists["a"].lengths.tolist() == [1, 0]
  replaced = tfds_dataset.examples_block(
      columns, FIELDS, "ali/x/train", 0,
      base.BadRows(skip=True, non_finite="replace"))
  assert replaced.replaced["n"].tolist() == [False, True, False]
  assert replaced.values["n"][1] == 0.0
