"""Tests of the `python -m export.export_savedmodel` entrypoint (its absl main):
refused below a floor, the next version published, the data dir required."""

import os
import shutil

from absl import app
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from export import export_savedmodel
from export import requests
from export import serving
from export import validation
from export import versions
from tests.helpers.flags import run_main


def test_main_refuses_below_floor_with_nonzero_exit(tiny_run, tmp_path, capsys,
                                                    valid_report):
  base = str(tmp_path / "export")
  floor = valid_report["ctr_auc"] + 0.01
  status = run_main(export_savedmodel, [
      f"--model_dir={tiny_run['model_dir']}", f"--data_dir={tiny_run['data_dir']}",
      f"--export_base={base}", f"--min_ctr_auc={floor}", "--min_cvr_auc=0",
      "--min_ctcvr_auc=0"])
  assert status == 1
  err = capsys.readouterr().err
  assert "export refused" in err and "ctr_auc" in err and "--min_ctr_auc" in err
  assert versions.versions(base) == []
  assert not os.path.exists(base) or os.listdir(base) == []


def test_main_publishes_next_version_and_keeps_newest(tiny_run, published,
                                                      tmp_path, capsys,
                                                      valid_report):
  base = str(tmp_path / "export")
  for version in (1, 2):  # two published versions with the same metrics
    shutil.copytree(published, versions.version_dir(base, version))
  status = run_main(export_savedmodel, [
      f"--model_dir={tiny_run['model_dir']}", f"--data_dir={tiny_run['data_dir']}",
      f"--export_base={base}", "--keep=2", "--warmup_records=3",
      "--min_ctr_auc=0", "--min_cvr_auc=0", "--min_ctcvr_auc=0"])
  assert status == 0
  out = capsys.readouterr().out
  assert f"exported SavedModel: {versions.version_dir(base, 3)}" in out
  assert versions.versions(base) == [2, 3]
  assert sorted(os.listdir(base)) == ["2", "3"]
  new = tf.saved_model.load(versions.version_dir(base, 3))
  # Calibrated outputs and the model's own (`_raw`); no tau without
  # --include_tau.
  assert set(new.signatures["serving_default"].structured_outputs) == {
      *F.SERVING_OUTPUTS, *(k + serving.RAW_SUFFIX for k in F.SERVING_OUTPUTS)}
  assert len(requests.read_warmup(
      versions.extra_path(versions.version_dir(base, 3), versions.WARMUP_FILE))) == 5


def test_main_requires_the_data_dir(tiny_run, tmp_path):
  with pytest.raises(app.UsageError, match="--data_dir is required"):
    run_main(export_savedmodel, [f"--model_dir={tiny_run['model_dir']}",
                                  f"--export_base={tmp_path}"])


def test_calibration_tolerance_flag_sets_the_gate():
  from absl import flags
  from absl.testing import flagsaver
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["export", "--calibration_tolerance=0.1"])
    assert export_savedmodel.policy_from_flags().calibration_tolerance == 0.1
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["export", "--calibration_tolerance=-1"])
    assert export_savedmodel.policy_from_flags().calibration_tolerance is None
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["export"])
    assert export_savedmodel.policy_from_flags().calibration_tolerance == (
        validation.DEFAULT_CALIBRATION_TOLERANCE)
