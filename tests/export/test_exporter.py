"""Tests of export/exporter.py: metrics stored beside the version, failures
that leave no numbered folder, a worse model refused, a full disk."""

import errno
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import calibration as calibration_lib
from adaftr_tf import experiments
from adaftr_tf import features as F
from export import exporter
from export import inspection
from export import serving
from export import validation
from export import versions
from pipelines.data import records
from pipelines.training import train_lib
from tests.helpers.data import INDEPENDENT_LABELS
from tests.helpers.data import write_independent_dataset
from tests.helpers.exports import NO_FLOORS


def test_metrics_stored_beside_the_version(tiny_run, published):
  stored = versions.read_metrics(published)
  assert stored["split"] == "valid"
  assert stored["data_dir"] == os.path.abspath(tiny_run["data_dir"])
  for task in validation.TASKS:
    key = validation.auc_key(task)
    assert stored["metrics"][key] == pytest.approx(tiny_run["valid"][key], abs=1e-6)
  for name in (versions.CONFIG_FILE, F.SCHEMA_FILE):
    assert os.path.exists(versions.extra_path(published, name))


def test_injected_failure_leaves_no_numbered_dir(tiny_run, tmp_path, monkeypatch):
  base = str(tmp_path / "export")

  def broken_save(model, schema, path, **kwargs):
    tf.io.gfile.makedirs(os.path.join(path, "variables"))  # half-written
    raise OSError("disk full (injected)")

  monkeypatch.setattr(serving, "save", broken_save)
  with pytest.raises(OSError, match="injected"):
    exporter.export(tiny_run["model_dir"], base, log=lambda _: None)
  assert versions.versions(base) == [] and os.listdir(base) == []


def test_failed_warmup_replay_leaves_no_numbered_dir(tiny_run, tmp_path,
                                                     monkeypatch, valid_report):
  from export import verify
  base = str(tmp_path / "export")
  monkeypatch.setattr(verify, "replay", lambda *_, **__: verify.Replay(
      records=1, problems=["record 0: ctr differs (injected)"]))
  with pytest.raises(ValueError, match="failed its warm-up replay"):
    exporter.export(tiny_run["model_dir"], base,
                             data_dir=tiny_run["data_dir"], policy=NO_FLOORS,
                             warmup_records=2, log=lambda _: None)
  assert versions.versions(base) == [] and os.listdir(base) == []


def test_refuses_a_worse_model_than_the_published_one(tiny_run, published,
                                                      tmp_path, valid_report):
  base = str(tmp_path / "export")
  better = versions.version_dir(base, 1)
  shutil.copytree(published, better)
  stored = versions.read_metrics(better)
  stored["metrics"]["cvr_auc"] = valid_report["cvr_auc"] + 0.05
  versions.write_extra(better, {versions.METRICS_FILE: json.dumps(stored)})
  with pytest.raises(validation.ExportRefused,
                     match=r"cvr_auc .* below version 1's .*--max_auc_drop"):
    exporter.export(tiny_run["model_dir"], base,
                             data_dir=tiny_run["data_dir"], policy=NO_FLOORS,
                             log=lambda _: None)
  assert versions.versions(base) == [1]
  assert not [n for n in os.listdir(base) if n.startswith(".tmp")]


@pytest.fixture
def trained(tiny_run):
  """The shared tiny run's model directory (tests only read it)."""
  return tiny_run["model_dir"]


@pytest.mark.reliability
def test_an_export_that_fails_to_write_keeps_the_published_versions(
    trained, tmp_path, monkeypatch):
  base = str(tmp_path / "exports")
  first = exporter.export(trained, base, log=lambda _: None)
  before = sorted(os.listdir(first))

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", base)

  monkeypatch.setattr(tf.saved_model, "save", full)
  with pytest.raises(OSError, match=f"cannot write version 2 under {base} "
                     r"[\s\S]*No space left on device[\s\S]*versions present "
                     r"\(\[1\]\) are intact"):
    exporter.export(trained, base, log=lambda _: None)
  assert versions.versions(base) == [1]
  assert sorted(os.listdir(first)) == before
  assert not [n for n in os.listdir(base) if n.startswith(versions.TMP_PREFIX)]


@pytest.mark.slow  # a training run and an export
def test_independent_model_exports_outputs_named_after_the_labels(tmp_path):
  config = experiments.config_of("tiny", ["data.source=files",
                                          "model.name=adaftr"])
  data_dir = write_independent_dataset(config, str(tmp_path / "data"), 1024)
  trained = train_lib.train(config, str(tmp_path / "model"), data_dir,
                            verbose=0, log=lambda _: None)
  valid = trained["valid"]
  assert {f"{n}_auc" for n in INDEPENDENT_LABELS} | {"mean_auc"} <= set(valid)
  path = exporter.export(str(tmp_path / "model"), str(tmp_path / "export"),
                         data_dir=data_dir, warmup_records=10,
                         log=lambda _: None)   # validated, warm-up replayed
  loaded = tf.saved_model.load(path)
  examples = [r.numpy() for r in tf.data.TFRecordDataset(
      records.list_shards(data_dir, "test")[0]).take(8)]
  served = loaded.signatures["serving_default"](examples=tf.constant(examples))
  assert set(served) == {*INDEPENDENT_LABELS,
                         *(n + "_raw" for n in INDEPENDENT_LABELS)}
  parsed = tf.io.parse_example(
      tf.constant(examples), trained["schema"].parse_spec(with_labels=False))
  outputs = trained["model"](parsed, training=False)
  np.testing.assert_allclose(served["income_50k_raw"], outputs["ctr"],
                             atol=1e-6)
  np.testing.assert_allclose(served["never_married_raw"], outputs["cvr"],
                             atol=1e-6)
  calibrated = calibration_lib.calibrate_collected(
      {"ctr": outputs["ctr"].numpy(), "cvr": outputs["cvr"].numpy()},
      trained["calibration"])   # fitted per task on every valid row
  assert set(trained["calibration"].curves) == {"ctr_logit", "cvr_logit"}
  np.testing.assert_allclose(served["income_50k"], calibrated["ctr"],
                             atol=1e-5)
  np.testing.assert_allclose(served["never_married"], calibrated["cvr"],
                             atol=1e-5)
  problems, _ = inspection.run_checks(str(tmp_path / "export"),
                                      model_dir=str(tmp_path / "model"),
                                      out=lambda _: None)
  assert problems == []
  # The gate reads the label-named AUCs (default floor 0.5 for each).
  with pytest.raises(validation.ExportRefused,
                     match="never_married_auc 0.4000 is below the floor 0.5"):
    validation.check({**valid, "never_married_auc": 0.4}, validation.Policy(),
                     None, None, data_dir, lambda _: None, INDEPENDENT_LABELS)
  assert validation.problems({**valid, "income_50k_auc": float("nan")},
                             validation.Policy(), tasks=INDEPENDENT_LABELS)
