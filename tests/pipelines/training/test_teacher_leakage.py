"""Tests of pipelines/training/teacher_leakage.py: the AUC
of a teacher's tau for the second label, within strata of r, on training and
validation rows, against a direct computation on the tiny data."""

import os
import shutil

import numpy as np
import pytest

from adaftr_tf import features as F
from adaftr_tf import folds as folds_lib
from adaftr_tf import metrics as M
from pipelines.data import reader
from pipelines.data import synthetic
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import teacher_leakage
from tests.helpers.jobs import copy_run_with

BINS = 4


def _pairs_auc(labels, scores, strata):
  """Row-weighted mean over strata (both classes present) of
  P(positive's score > negative's) + 0.5 P(tie), counted pair by pair."""
  total, weight = 0.0, 0
  for stratum in np.unique(strata):
    rows = strata == stratum
    pos, neg = scores[rows & (labels > 0.5)], scores[rows & (labels <= 0.5)]
    if len(pos) and len(neg):
      wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] ==
                                                    neg[None, :])
      total += rows.sum() * wins.mean()
      weight += rows.sum()
  return total / weight


def _clicked_rows(data_dir, split, teacher_dirs):
  """The split in one batch, its clicked rows: (taus [n, K], label, r, fold)."""
  schema = F.FeatureSchema.load(data_dir)
  features, labels, extra = next(iter(reader.make_dataset(
      data_dir, split, schema, 1 << 16, training=False, with_oracle=True)))
  clicked = labels[F.CLICK].numpy() > 0.5
  taus = np.stack([model_dir_lib.load_trained(d)[0].instance_tau(
      features).numpy().reshape(-1) for d in teacher_dirs], axis=1)
  return (taus[clicked], labels[F.CONVERSION].numpy()[clicked],
          extra[F.ORACLE_RELATEDNESS].numpy()[clicked],
          folds_lib.row_fold(features, 2).numpy()[clicked])


def test_one_teachers_auc_on_training_and_validation_rows(tiny_run):
  teacher = tiny_run["model_dir"]
  result = teacher_leakage.measure(tiny_run["data_dir"], [teacher], BINS)
  assert result["kind"] == "single" and "planted" in result["strata"]
  expected = {}
  for split in ("train", "valid"):
    taus, label, r, _ = _clicked_rows(tiny_run["data_dir"], split, [teacher])
    expected[split] = _pairs_auc(label, -taus[:, 0],
                                 M.quantile_strata(r, BINS))
    part = result[split]
    assert part["rows"] == len(label) > 100
    assert part["positives"] == int(label.sum()) > 10
    assert part["student_auc"] == pytest.approx(expected[split], abs=1e-9)
    assert part["teacher_auc"] == [part["student_auc"]]
    assert part["spearman_neg_tau_vs_r"] == pytest.approx(
        M.spearman(-taus[:, 0], r))
  assert result["leakage"] == pytest.approx(
      expected["train"] - expected["valid"], abs=1e-9)
  assert result["teacher_leakage"] == [pytest.approx(result["leakage"])]


def test_max_rows_reads_the_first_whole_batches(tiny_run):
  schema = F.FeatureSchema.load(tiny_run["data_dir"])
  first = next(iter(reader.make_dataset(tiny_run["data_dir"], "valid",
                                        schema, 512, training=False)))
  result = teacher_leakage.measure(tiny_run["data_dir"],
                                   [tiny_run["model_dir"]], BINS,
                                   max_rows=300, batch_size=256)
  assert result["valid"]["rows"] == int(first[1][F.CLICK].numpy().sum())
  assert result["valid"]["rows"] < teacher_leakage.measure(
      tiny_run["data_dir"], [tiny_run["model_dir"]], BINS)["valid"]["rows"]


def test_without_the_planted_relatedness_one_stratum(tiny_run, tmp_path):
  """Data without the oracle (here: the tiny data minus synthetic.json,
  which says the records hold it): the plain AUC of -tau, no Spearman."""
  data_dir = tmp_path / "data"
  shutil.copytree(tiny_run["data_dir"], data_dir)
  os.remove(data_dir / synthetic.SYNTHETIC_FILE)
  result = teacher_leakage.measure(str(data_dir), [tiny_run["model_dir"]])
  assert result["strata"].startswith("none")
  taus, label, _, _ = _clicked_rows(tiny_run["data_dir"], "valid",
                                    [tiny_run["model_dir"]])
  assert result["valid"]["student_auc"] == pytest.approx(
      M.auc(label, -taus[:, 0]), abs=1e-9)
  assert "spearman_neg_tau_vs_r" not in result["valid"]
  with pytest.raises(ValueError, match="no teacher directory given"):
    teacher_leakage.measure(str(data_dir), [])


def test_cross_fitted_teachers_are_read_as_the_student_reads_them(
    tiny_run, tmp_path):
  """Fold 0's teacher: the tiny run with halved weights (another tau);
  fold 1's: the tiny run. A training row reads the teacher of its fold."""
  def hold_out(fold):
    return lambda config: config["train"].update(folds=2, holdout_fold=fold)
  teachers = [copy_run_with(tiny_run["model_dir"], tmp_path / f"fold{k}",
                            model_dir_lib.CONFIG_FILE, hold_out(k))
              for k in (0, 1)]
  model, _, _ = model_dir_lib.load_trained(teachers[0])
  model.set_weights([w * 0.5 for w in model.get_weights()])
  model.save_weights(os.path.join(teachers[0], model_dir_lib.BEST_WEIGHTS))
  result = teacher_leakage.measure(tiny_run["data_dir"], teachers, BINS)
  assert result["kind"] == "cross_fitted"
  taus, label, r, fold = _clicked_rows(tiny_run["data_dir"], "train",
                                       teachers)
  assert np.abs(taus[:, 0] - taus[:, 1]).max() > 1e-4
  strata = M.quantile_strata(r, BINS)
  train = result["train"]
  assert train["student_auc"] == pytest.approx(_pairs_auc(
      label, -np.where(fold == 0, taus[:, 0], taus[:, 1]), strata), abs=1e-9)
  for k in (0, 1):
    for name, rows in (("held_out_auc", fold == k),
                       ("in_sample_auc", fold != k)):
      assert train[name][k] == pytest.approx(_pairs_auc(
          label[rows], -taus[rows, k], strata[rows]), abs=1e-9), (name, k)
  v_taus, v_label, v_r, _ = _clicked_rows(tiny_run["data_dir"], "valid",
                                          teachers)
  v_strata = M.quantile_strata(v_r, BINS)
  assert result["valid"]["student_auc"] == pytest.approx(_pairs_auc(
      v_label, -v_taus.mean(axis=1), v_strata), abs=1e-9)
  valid_each = [_pairs_auc(v_label, -v_taus[:, k], v_strata) for k in (0, 1)]
  assert result["leakage"] == pytest.approx(np.mean(
      [train["held_out_auc"][k] - valid_each[k] for k in (0, 1)]), abs=1e-9)
  assert result["teacher_leakage"] == pytest.approx(
      [train["in_sample_auc"][k] - valid_each[k] for k in (0, 1)], abs=1e-9)
