"""Tests of adaftr_tf.evaluation: report() on hand-built arrays, collect()."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import evaluation as E
from adaftr_tf import features as F
from adaftr_tf import metrics as M


def _collected(with_tau=False, with_oracle=False):
  # Rows 0-3 clicked, rows 4-5 not (so their conversion is 0).
  data = {
      F.CLICK: np.array([1, 1, 1, 1, 0, 0], np.float32),
      F.CONVERSION: np.array([1, 0, 1, 0, 0, 0], np.float32),
      F.CTR: np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.65], np.float32),
      # On clicked rows CVR ranks perfectly; the unclicked rows carry the
      # highest CVR scores, so counting them would pull the AUC below 1.
      F.CVR: np.array([0.9, 0.1, 0.8, 0.2, 0.95, 0.99], np.float32),
      F.CTCVR: np.array([0.5, 0.1, 0.4, 0.05, 0.2, 0.3], np.float32),
  }
  if with_tau:
    data[F.TAU] = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], np.float32)
  if with_oracle:
    data[F.ORACLE_P_CLICK] = np.array([0.6, 0.7, 0.5, 0.4, 0.45, 0.1], np.float32)
    data[F.ORACLE_P_CVR] = np.array([0.3, 0.1, 0.2, 0.4, 0.9, 0.95], np.float32)
    data[F.ORACLE_RELATEDNESS] = np.array([3., 1., 2., 0., 5., 4.], np.float32)
  return data


BINARY_SUFFIXES = ("auc", "logloss", "ece", "pred_obs_ratio", "count",
                   "observed_rate", "observed_rate_se", "pred_obs_ratio_se",
                   "reliability")
GAUC_SUFFIXES = ("gauc", "gauc_pos_weighted", "gauc_groups", "gauc_excluded",
                 "gauc_row_share")


def test_report_basic_keys_and_rates():
  result = E.report(_collected())
  expected = {"num_examples", "click_rate", "conversion_rate"} | {
      f"{task}_{s}" for task in ("ctr", "cvr", "ctcvr") for s in BINARY_SUFFIXES}
  assert set(result) == expected
  assert result["num_examples"] == 6
  assert result["click_rate"] == pytest.approx(4 / 6)
  assert result["conversion_rate"] == pytest.approx(2 / 6)
  assert result["ctr_count"] == 6
  assert result["ctcvr_count"] == 6


def test_report_cvr_uses_clicked_rows_only():
  data = _collected()
  result = E.report(data)
  assert result["cvr_count"] == 4
  assert result["cvr_auc"] == 1.0
  # The same metric over all rows would differ: the data discriminates.
  all_rows_auc = M.auc(data[F.CONVERSION], data[F.CVR])
  assert all_rows_auc < 1.0
  clicked = data[F.CLICK] > 0.5
  assert result["cvr_logloss"] == pytest.approx(
      M.log_loss(data[F.CONVERSION][clicked], data[F.CVR][clicked]))
  assert result["cvr_logloss"] != pytest.approx(
      M.log_loss(data[F.CONVERSION], data[F.CVR]))
  assert result["cvr_pred_obs_ratio"] == pytest.approx(2.0 / 2)


def test_report_ctr_and_ctcvr_use_all_rows():
  data = _collected()
  result = E.report(data)
  assert result["ctr_auc"] == pytest.approx(M.auc(data[F.CLICK], data[F.CTR]))
  # ctr scores: clicked 0.9, 0.8, 0.7, 0.6 vs unclicked 0.3, 0.65 -> 7/8.
  assert result["ctr_auc"] == pytest.approx(7 / 8)
  assert result["ctcvr_auc"] == pytest.approx(
      M.auc(data[F.CONVERSION], data[F.CTCVR]))
  assert result["ctcvr_auc"] == 1.0


def test_report_without_tau_or_oracle_has_no_such_keys():
  result = E.report(_collected())
  assert not any(k.startswith(("tau_", "oracle_", "spearman")) for k in result)


def test_report_tau_without_oracle():
  result = E.report(_collected(with_tau=True))
  assert result["tau_mean"] == pytest.approx(0.35)
  assert result["tau_p50"] == pytest.approx(0.35)
  assert {"tau_std", "tau_p5", "tau_p25", "tau_p75", "tau_p95"} <= set(result)
  assert not any(k.startswith(("oracle_", "spearman")) for k in result)
  assert "tau_at_min" not in result   # no bounds given
  # tau 0.1 .. 0.6 within [0.1, 0.6]: one row at each bound.
  bounded = E.report(_collected(with_tau=True), bounds=(0.1, 0.6))
  assert bounded["tau_at_min"] == pytest.approx(1 / 6)
  assert bounded["tau_at_max"] == pytest.approx(1 / 6)


def test_report_oracle_without_tau():
  data = _collected(with_oracle=True)
  result = E.report(data)
  assert {"oracle_ctr_auc", "oracle_cvr_auc", "oracle_ctcvr_auc"} <= set(result)
  assert "spearman_neg_tau_vs_r" not in result
  assert not any(k.startswith("tau_") for k in result)
  click, conversion = data[F.CLICK], data[F.CONVERSION]
  # p_click: clicked (0.6, 0.7, 0.5, 0.4) vs unclicked (0.45, 0.1) -> 7/8.
  assert result["oracle_ctr_auc"] == pytest.approx(7 / 8)
  # p_cvr on clicked rows: converted (0.3, 0.2) vs not (0.1, 0.4) -> 2/4; over
  # all rows (adding negatives 0.9, 0.95) it would be 2/8.
  assert result["oracle_cvr_auc"] == pytest.approx(0.5)
  assert M.auc(conversion, data[F.ORACLE_P_CVR]) == pytest.approx(0.25)
  assert result["oracle_ctcvr_auc"] == pytest.approx(
      M.auc(conversion, data[F.ORACLE_P_CLICK] * data[F.ORACLE_P_CVR]))
  assert result["oracle_ctr_auc"] == pytest.approx(
      M.auc(click, data[F.ORACLE_P_CLICK]))


def test_report_spearman_with_tau_and_oracle():
  data = _collected(with_tau=True, with_oracle=True)
  result = E.report(data)
  expected = M.spearman(-data[F.TAU], data[F.ORACLE_RELATEDNESS])
  assert result["spearman_neg_tau_vs_r"] == pytest.approx(expected)
  # -tau ranks (6..1) vs r ranks (4, 2, 3, 1, 6, 5): hand rho = 1 - 6*sum d^2
  # / (n (n^2 - 1)) with d = (2, 3, 1, 2, -4, -4) -> 1 - 6*50/210.
  assert result["spearman_neg_tau_vs_r"] == pytest.approx(1 - 6 * 50 / 210)


def test_report_no_clicks_gives_nan_cvr():
  data = _collected()
  data[F.CLICK] = np.zeros(6, np.float32)
  data[F.CONVERSION] = np.zeros(6, np.float32)
  result = E.report(data)
  assert result["cvr_count"] == 0
  assert math.isnan(result["cvr_auc"])


# ---------------------------------------------------------------- collect

N = 8


def _dataset(with_oracle=True, batch=3):
  rng = np.random.default_rng(0)
  x = rng.normal(size=N).astype(np.float32)
  ids = np.arange(N, dtype=np.int64)
  labels = {F.CLICK: (np.arange(N) % 2).astype(np.float32),
            F.CONVERSION: (np.arange(N) % 4 == 1).astype(np.float32)}
  oracle = {F.ORACLE_P_CLICK: np.linspace(0.1, 0.8, N).astype(np.float32),
            F.ORACLE_P_CVR: np.linspace(0.2, 0.9, N).astype(np.float32),
            F.ORACLE_RELATEDNESS: np.arange(N, dtype=np.float32)}
  features = {"x": x, "id": ids}
  elements = (features, labels, oracle) if with_oracle else (features, labels)
  return tf.data.Dataset.from_tensor_slices(elements).batch(batch), x, labels, oracle


def _stub_callable(features, training=False):
  assert training is False
  ctr = tf.sigmoid(features["x"])
  cvr = tf.cast(features["id"], tf.float32) / 10.0
  return {F.CTR: ctr, F.CVR: cvr, F.CTCVR: ctr * cvr,
          F.H_CTR: tf.zeros([tf.shape(ctr)[0], 4])}


class _StubModule(tf.Module):

  def __init__(self):
    super().__init__()
    self.scale = tf.Variable(2.0)

  def __call__(self, features, training=False):
    ctr = tf.sigmoid(features["x"])[:, None]  # [batch, 1] is flattened
    cvr = tf.cast(features["id"], tf.float32) / 10.0
    return {F.CTR: ctr, F.CVR: cvr, F.CTCVR: ctr[:, 0] * cvr,
            F.TAU: self.scale * cvr}


def test_collect_concatenates_rows_in_order():
  dataset, x, labels, oracle = _dataset()
  collected = E.collect(_stub_callable, dataset)
  assert set(collected) == {F.CTR, F.CVR, F.CTCVR, *F.LABEL_KEYS,
                            *F.ORACLE_KEYS}
  assert F.H_CTR not in collected  # only COLLECTED_OUTPUTS are kept
  for value in collected.values():
    assert value.shape == (N,)
  expected_ctr = 1 / (1 + np.exp(-x))
  np.testing.assert_allclose(collected[F.CTR], expected_ctr, rtol=1e-6)
  np.testing.assert_allclose(collected[F.CVR], np.arange(N) / 10.0, rtol=1e-6)
  np.testing.assert_allclose(collected[F.CTCVR],
                             expected_ctr * np.arange(N) / 10.0, rtol=1e-5)
  for key in F.LABEL_KEYS:
    np.testing.assert_array_equal(collected[key], labels[key])
  for key in F.ORACLE_KEYS:
    np.testing.assert_array_equal(collected[key], oracle[key])


def test_collect_with_tf_module_and_no_oracle():
  dataset, x, labels, _ = _dataset(with_oracle=False, batch=5)
  collected = E.collect(_StubModule(), dataset)
  assert set(collected) == {F.CTR, F.CVR, F.CTCVR, F.TAU, *F.LABEL_KEYS}
  np.testing.assert_allclose(collected[F.CTR], 1 / (1 + np.exp(-x)), rtol=1e-6)
  np.testing.assert_allclose(collected[F.TAU], 2.0 * np.arange(N) / 10.0,
                             rtol=1e-6)
  np.testing.assert_array_equal(collected[F.CLICK], labels[F.CLICK])


def test_collect_then_report_end_to_end():
  dataset, _, _, _ = _dataset()
  result = E.evaluate(_StubModule(), dataset)
  assert result["num_examples"] == N
  assert result["cvr_count"] == N // 2
  assert "spearman_neg_tau_vs_r" in result
  # tau = 0.2 * id and r = id, so -tau is perfectly anti-monotone in r.
  assert result["spearman_neg_tau_vs_r"] == pytest.approx(-1.0)


def test_collect_empty_dataset():
  dataset, _, _, _ = _dataset()
  with pytest.raises(ValueError, match="evaluation dataset is empty"):
    E.collect(_stub_callable, dataset.take(0))


# ---------------------------------------------------------------- groups

USER = E.FEATURE_PREFIX + "user"


def _grouped(data=None):
  """_collected() with a user column: users 1 (rows 0, 1, 4), 2 (rows 2, 3,
  5)."""
  data = dict(data or _collected())
  data[USER] = np.array([1, 1, 2, 2, 1, 2], np.int64)
  return data


def test_report_gauc_for_every_task_cvr_on_clicked_rows():
  data = _grouped()
  result = E.report(data, group_field="user")
  for task in ("ctr", "cvr", "ctcvr"):
    assert {f"{task}_{s}" for s in GAUC_SUFFIXES} <= set(result), task
  clicked = data[F.CLICK] > 0.5
  assert result["cvr_gauc"] == M.group_auc(
      data[F.CONVERSION][clicked], data[F.CVR][clicked], data[USER][clicked],
      "cvr")["cvr_gauc"]
  # Clicked rows: user 1 rows 0 (converted), 1 (not); user 2 rows 2, 3.
  assert result["cvr_gauc"] == 1.0 and result["cvr_gauc_groups"] == 2
  assert result["ctr_gauc"] == pytest.approx(M.group_auc(
      data[F.CLICK], data[F.CTR], data[USER], "ctr")["ctr_gauc"])
  assert result["group_field"] == "user"
  assert result["segment_field"] == "user"      # default: the group field
  assert result["ctr_auc"] == E.report(_collected())["ctr_auc"]
  json.dumps({k: v for k, v in result.items() if k.endswith(
      ("_segments", "_reliability", "_field"))}, allow_nan=False)


def test_report_calibration_by_segment_on_the_task_rows():
  data = _grouped()
  data[E.FEATURE_PREFIX + "country"] = np.array([7, 7, 7, 8, 8, 8])
  result = E.report(data, group_field="user", segment_field="country",
                    top_k=1)
  assert result["segment_field"] == "country"
  (ctr,) = result["ctr_segments"]
  assert (ctr["value"], ctr["count"]) == (7, 3)          # ties: smaller value
  assert ctr["mean_pred"] == pytest.approx(0.8)
  assert ctr["observed"] == pytest.approx(1.0)
  (cvr,) = result["cvr_segments"]                  # clicked rows: 7, 7, 7, 8
  assert (cvr["value"], cvr["count"]) == (7, 3)
  assert cvr["pred_obs_ratio"] == pytest.approx((0.9 + 0.1 + 0.8) / 2)


def test_report_without_a_group_field_has_no_group_keys():
  result = E.report(_grouped())
  assert not any("gauc" in k or k.endswith("_segments") for k in result)
  assert "group_field" not in result
  with pytest.raises(ValueError, match="no collected column of field 'x'"):
    E.report(_collected(), group_field="x")


def test_report_independent_tasks_have_their_gauc_and_its_mean():
  from adaftr_tf import objective as objective_lib
  objective = objective_lib.Objective(F.INDEPENDENT, ("income", "married"))
  result = E.report(_grouped(), objective=objective, group_field="user")
  assert result[E.MEAN_GAUC] == pytest.approx(
      (result["income_gauc"] + result["married_gauc"]) / 2)
  assert objective_lib.task_names(result) == ("income", "married")


def _schema(*fields, multivalent=()):
  return F.FeatureSchema(
      tuple(F.CategoricalFeature(n, 10, multivalent=n in multivalent)
            for n in fields), (F.NumericalFeature("x"),))


def test_group_field_auto_takes_the_user_field_of_each_data():
  assert E.group_field("auto", _schema("f121", "f101")) == "f101"   # Ali-CCP
  assert E.group_field("auto", _schema(
      "categorical_2", "categorical_1")) == "categorical_1"
  assert E.group_field("auto", _schema("class_worker", "education")) == (
      "class_worker")
  assert E.group_field("auto", _schema("f210", multivalent=("f210",))) is None
  assert E.group_field("education", _schema("class_worker", "education")) \
      == "education"


def test_an_unknown_or_multivalent_group_field_is_a_config_error():
  from adaftr_tf.config import ConfigError
  schema = _schema("f101", "f210", multivalent=("f210",))
  for name in ("nope", "f210", "x"):
    with pytest.raises(ConfigError, match=(
        f"^data.group_field='{name}' is not a row key or a single-valued "
        r"categorical field of the data; choose one of \['auto', 'f101'\]$")):
      E.group_field(name, schema)


def test_row_keys_group_first_and_are_read_from_the_extra_columns():
  """A row key (AliExpress's search session) is what `auto` groups by; its
  column comes from the dataset's third element, not from the features."""
  schema = F.FeatureSchema((F.CategoricalFeature("categorical_1", 10),),
                           (F.NumericalFeature("x"),), keys=("search_id",))
  assert E.group_fields(schema) == ("search_id", "categorical_1")
  assert E.group_field("auto", schema) == "search_id"
  dataset, _, labels, oracle = _dataset()
  sessions = np.arange(N, dtype=np.int64) // 4
  with_keys = dataset.unbatch().map(
      lambda f, l, o: (f, l, {**o, "search_id": f["id"] // 4})).batch(3)
  collected = E.collect(_stub_callable, with_keys, ("search_id",))
  np.testing.assert_array_equal(collected[E.FEATURE_PREFIX + "search_id"],
                                sessions)
  assert "search_id" not in collected   # only the oracle columns pass as is
  assert set(oracle) <= set(collected)
  with pytest.raises(ValueError, match=r"\['search_id'\] are neither "
                     "features nor extra columns .*with_keys=True"):
    E.collect(_stub_callable, dataset, ("search_id",))
  # GAUC over the sessions equals a direct per-session computation.
  result = E.report(collected, group_field="search_id")
  click, probs = labels[F.CLICK], collected[F.CTR]
  aucs, weights = [], []
  for session in np.unique(sessions):
    rows = sessions == session
    if 0 < click[rows].sum() < rows.sum():
      aucs.append(M.auc(click[rows], probs[rows]))
      weights.append(rows.sum())
  assert result["group_field"] == "search_id"
  assert result["ctr_gauc"] == pytest.approx(np.average(aucs,
                                                        weights=weights))


def test_collect_keeps_the_requested_feature_columns():
  dataset, _, _, _ = _dataset()
  collected = E.collect(_stub_callable, dataset, ("id", None, "id"))
  np.testing.assert_array_equal(collected[E.FEATURE_PREFIX + "id"],
                                np.arange(N))


def test_evaluate_reports_gauc_over_the_given_field():
  dataset, _, _, _ = _dataset()
  assert E.report_fields(_StubModule()) == (None, None)  # no schema: no auto
  result = E.evaluate(_StubModule(), dataset, group_field="id")
  assert result["group_field"] == "id"
  # One row per id: every group has one class, none is averaged.
  assert result["ctr_gauc_excluded"] == N and math.isnan(result["ctr_gauc"])
  assert "gauc" not in "".join(E.evaluate(_StubModule(), dataset))
