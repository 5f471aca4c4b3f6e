"""Tests for pipelines/data/synthetic.py: the seeded synthetic impression log."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.config import SyntheticConfig
from pipelines.data import files
from pipelines.data import layout
from pipelines.data import records
from pipelines.data import synthetic

ROWS = 100_000
TINY = SyntheticConfig(num_train=300, num_valid=120, num_test=80,
                       num_categorical=3, num_numerical=5, vocab_size=50,
                       num_shards=2, seed=3)


@pytest.fixture(scope="module")
def big():
  return synthetic.generate_split(SyntheticConfig(), "test", num_rows=ROWS)


def _auc(scores, labels):
  """Rank-based (Mann-Whitney) AUC with average ranks for ties."""
  order = np.argsort(scores, kind="mergesort")
  ranks = np.empty(len(scores))
  sorted_scores = scores[order]
  _, first, counts = np.unique(sorted_scores, return_index=True,
                               return_counts=True)
  ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
  pos = labels == 1
  n_pos, n_neg = pos.sum(), (~pos).sum()
  return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _logit(p):
  p = p.astype(np.float64)
  return np.log(p) - np.log1p(-p)


def test_auc_helper():
  assert _auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
  assert _auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5


def test_columns_dtypes_and_shapes():
  cols = synthetic.generate_split(TINY, "train")
  schema = synthetic.synthetic_schema(TINY)
  assert set(cols) == {*schema.feature_names, *F.LABEL_KEYS, *F.ORACLE_KEYS}
  for f in schema.categorical:
    assert cols[f.name].dtype == np.int64 and cols[f.name].shape == (300,)
    assert 0 <= cols[f.name].min() and cols[f.name].max() < TINY.vocab_size
  for f in schema.numerical:
    assert cols[f.name].dtype == np.float32
    assert 0 <= cols[f.name].min() and cols[f.name].max() <= 1
  for k in F.LABEL_KEYS:
    assert cols[k].dtype == np.int64 and set(np.unique(cols[k])) <= {0, 1}
  for k in F.ORACLE_KEYS:
    assert cols[k].dtype == np.float32
  assert len(synthetic.generate_split(TINY, "valid")[F.CLICK]) == 120
  assert len(synthetic.generate_split(TINY, "test", num_rows=7)[F.CLICK]) == 7


def test_deterministic_and_seeded():
  a = synthetic.generate_split(TINY, "train")
  b = synthetic.generate_split(TINY, "train")
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  c = synthetic.generate_split(dataclasses.replace(TINY, seed=4), "train")
  assert not np.array_equal(a[F.ORACLE_P_CLICK], c[F.ORACLE_P_CLICK])
  assert not np.array_equal(a["categorical_1"], c["categorical_1"])
  # Splits are different draws from the same world.
  v = synthetic.generate_split(TINY, "valid", num_rows=300)
  assert not np.array_equal(a[F.ORACLE_P_CLICK], v[F.ORACLE_P_CLICK])


def test_unknown_split_and_bad_config_raise():
  with pytest.raises(ValueError, match="'dev'.*train"):
    synthetic.generate_split(TINY, "dev")
  with pytest.raises(ValueError, match="click_rate"):
    synthetic.generate_split(dataclasses.replace(TINY, click_rate=1.5), "train")


def test_rates_match_targets(big):
  click, conversion = big[F.CLICK], big[F.CONVERSION]
  assert abs(click.mean() - 0.05) < 0.005
  assert abs(conversion.sum() / click.sum() - 0.10) < 0.015
  assert abs(big[F.ORACLE_P_CLICK].mean() - 0.05) < 0.003
  # Conversion implies click.
  assert not np.any((conversion == 1) & (click == 0))


def test_relatedness_is_spread_and_planted(big):
  r = big[F.ORACLE_RELATEDNESS]
  assert r.min() >= 0 and r.max() <= 1 and r.std() > 0.15
  assert np.quantile(r, 0.1) < 0.2 and np.quantile(r, 0.9) > 0.8
  lc, lv = _logit(big[F.ORACLE_P_CLICK]), _logit(big[F.ORACLE_P_CVR])
  high, low = r > 0.7, r < 0.3
  assert high.sum() > 10_000 and low.sum() > 10_000
  corr_high = np.corrcoef(lc[high], lv[high])[0, 1]
  corr_low = np.corrcoef(lc[low], lv[low])[0, 1]
  assert corr_high > 0.8 and corr_low < 0.4, (corr_high, corr_low)


def test_oracle_auc_is_informative(big):
  ctr_auc = _auc(big[F.ORACLE_P_CLICK], big[F.CLICK])
  clicked = big[F.CLICK] == 1
  cvr_auc = _auc(big[F.ORACLE_P_CVR][clicked], big[F.CONVERSION][clicked])
  assert ctr_auc > 0.75 and cvr_auc > 0.65, (ctr_auc, cvr_auc)


def test_synthetic_schema_stats():
  schema = synthetic.synthetic_schema(TINY)
  assert [f.name for f in schema.categorical] == [
      "categorical_1", "categorical_2", "categorical_3"]
  assert all(f.vocab_size == 50 and f.encoding == "identity"
             for f in schema.categorical)
  stats = {f.name: (0.5, 0.25) for f in schema.numerical}
  fitted = synthetic.synthetic_schema(TINY, stats)
  assert all((f.mean, f.std) == (0.5, 0.25) for f in fitted.numerical)
  with pytest.raises(ValueError, match="numerical_5"):
    synthetic.synthetic_schema(TINY, {"numerical_1": (0.0, 1.0)})


def test_write_and_ensure(tmp_path):
  data_dir = str(tmp_path / "synth")
  lines = []
  schema = synthetic.ensure_synthetic_dataset(TINY, data_dir, log=lines.append)
  assert lines and not [p for p in os.listdir(tmp_path) if ".tmp" in p]
  for split, rows in zip(F.SPLITS, (300, 120, 80)):
    paths = records.list_shards(data_dir, split)
    assert len(paths) == TINY.num_shards
    assert layout.count_rows(data_dir, split) == rows
    assert len(layout.split_examples(data_dir, split)) == rows
  # Numerical stats come from the train split only.
  train = synthetic.generate_split(TINY, "train")
  for f in schema.numerical:
    assert f.mean == pytest.approx(train[f.name].astype(np.float64).mean())
    assert f.std == pytest.approx(train[f.name].astype(np.float64).std())
  assert F.FeatureSchema.load(data_dir) == schema
  with open(os.path.join(data_dir, synthetic.SYNTHETIC_FILE)) as f:
    meta = json.load(f)
  assert meta["config"] == dataclasses.asdict(TINY)
  assert meta["splits"]["valid"]["rows"] == 120
  assert set(meta["splits"]["train"]) >= {
      "click_rate", "conversion_rate", "post_click_cvr", "mean_relatedness"}
  # Second call loads without regenerating.
  lines.clear()
  assert synthetic.ensure_synthetic_dataset(TINY, data_dir,
                                            log=lines.append) == schema
  assert lines == [f"using synthetic dataset in {data_dir} "
                   "(row blocks of 4096 rows)"]
  other = dataclasses.replace(TINY, seed=11, vocab_size=60)
  with pytest.raises(ValueError, match="seed.*vocab_size|vocab_size.*seed"):
    synthetic.ensure_synthetic_dataset(other, data_dir, log=lines.append)
  with pytest.raises(ValueError, match="--data_dir"):
    synthetic.ensure_synthetic_dataset(other, data_dir, log=lines.append)


def test_refuses_foreign_directory(tmp_path):
  (tmp_path / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match="not a synthetic dataset"):
    synthetic.ensure_synthetic_dataset(TINY, str(tmp_path), log=lambda _: None)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
  real = layout.write_sharded

  def failing(columns, directory, split, num_shards, record_layout):
    if split == F.SPLITS[-1]:
      raise KeyboardInterrupt
    return real(columns, directory, split, num_shards, record_layout)

  monkeypatch.setattr(layout, "write_sharded", failing)
  with pytest.raises(KeyboardInterrupt):
    synthetic.write_synthetic_dataset(TINY, str(tmp_path / "d"),
                                      log=lambda _: None)
  assert not os.listdir(tmp_path)


def test_concurrent_writer_finishing_first_is_reused(tmp_path, monkeypatch):
  done = str(tmp_path / "done")
  synthetic.write_synthetic_dataset(TINY, done, log=lambda _: None)
  target = str(tmp_path / "d")
  real = os.rename

  def racing_rename(src, dst):
    real(done, target)   # the other worker wins the race
    real(src, dst)

  monkeypatch.setattr(synthetic.os, "rename", racing_rename)
  schema = synthetic.write_synthetic_dataset(TINY, target, log=lambda _: None)
  assert schema == F.FeatureSchema.load(target)
  assert sorted(os.listdir(tmp_path)) == ["d"]


# --- a non-local file system (ram://) -----------------------------------------

def test_synthetic_dataset_on_ram(ram_synthetic_dir, ram_dir):
  names = files.list_dir(ram_synthetic_dir)
  assert {records.MANIFEST_FILE, F.SCHEMA_FILE,
          synthetic.SYNTHETIC_FILE} <= set(names)
  assert files.list_dir(ram_dir) == ["data"]  # no temporary folder left
  for split in F.SPLITS:
    shards = records.list_shards(ram_synthetic_dir, split)
    assert len(shards) == 2 and all(p.startswith("ram://") for p in shards)
  with tf.io.gfile.GFile(f"{ram_synthetic_dir}/{records.MANIFEST_FILE}") as f:
    sizes = json.load(f)["shards"]
  assert len(sizes) == 2 * len(F.SPLITS)
  for name, size in sizes.items():
    assert tf.io.gfile.stat(f"{ram_synthetic_dir}/{name}").length == size > 0
  records.check_manifest(ram_synthetic_dir, F.SPLITS)
  logged = []
  synthetic.ensure_synthetic_dataset(TINY, ram_synthetic_dir,
                                     log=logged.append)
  assert logged == [f"using synthetic dataset in {ram_synthetic_dir} "
                    "(row blocks of 4096 rows)"]


@pytest.mark.parametrize("world, r_value", [("one", 1.0), ("zero", 0.0)])
def test_control_worlds_hold_the_relatedness_constant(world, r_value):
  """r = 1: the purchase logit is the click logit (an affine function of it
  after the biases); r = 0: the two are independent draws."""
  config = dataclasses.replace(SyntheticConfig(), relatedness=world)
  columns = synthetic.generate_split(config, "test", num_rows=20_000)
  assert np.all(columns[F.ORACLE_RELATEDNESS] == r_value)
  corr = np.corrcoef(_logit(columns[F.ORACLE_P_CLICK]),
                     _logit(columns[F.ORACLE_P_CVR]))[0, 1]
  if world == "one":
    assert corr > 0.999
  else:
    assert abs(corr) < 0.05
  planted = synthetic.generate_split(SyntheticConfig(), "test",
                                     num_rows=20_000)
  # The same world otherwise: features and click probabilities agree.
  np.testing.assert_array_equal(columns["categorical_1"],
                                planted["categorical_1"])
  np.testing.assert_allclose(columns[F.ORACLE_P_CLICK],
                             planted[F.ORACLE_P_CLICK], rtol=1e-6)
  rates = columns[F.CONVERSION].sum() / max(columns[F.CLICK].sum(), 1)
  assert rates == pytest.approx(config.cvr_rate, rel=0.25)


def test_relatedness_fields_are_those_r_depends_on():
  config = SyntheticConfig(num_train=10, num_valid=10, num_test=10)
  fields = synthetic.relatedness_fields(config)
  assert len(fields) == 5   # 3 categorical fields and 2 numerical ones
  assert "categorical_1" not in fields
  columns = synthetic.generate_split(config, "test", num_rows=4000)
  # Rows equal on those fields have equal r, whatever their other fields.
  key = np.stack([columns[f] for f in fields], axis=1)
  _, first = np.unique(key, axis=0, return_index=True)
  r = columns[F.ORACLE_RELATEDNESS]
  for i in first[:50]:
    same = np.all(key == key[i], axis=1)
    assert np.allclose(r[same], r[i])


def test_data_written_before_the_world_choice_existed_is_reused(tmp_path):
  data_dir = str(tmp_path / "synth")
  synthetic.ensure_synthetic_dataset(TINY, data_dir, log=lambda _: None)
  path = os.path.join(data_dir, synthetic.SYNTHETIC_FILE)
  with open(path) as f:
    meta = json.load(f)
  del meta["config"]["relatedness"]   # as written by an older version
  with open(path, "w") as f:
    json.dump(meta, f)
  lines = []
  synthetic.ensure_synthetic_dataset(TINY, data_dir, log=lines.append)
  assert lines == [f"using synthetic dataset in {data_dir} "
                   "(row blocks of 4096 rows)"]
  with pytest.raises(ValueError, match="relatedness: stored 'planted', "
                     "requested 'zero'"):
    synthetic.ensure_synthetic_dataset(
        dataclasses.replace(TINY, relatedness="zero"), data_dir,
        log=lines.append)


def test_aliexpress_like_schema_default_shape():
  schema = synthetic.aliexpress_like_schema()
  assert len(schema.categorical) == 16
  assert len(schema.numerical) == 63
  assert schema.categorical[0].name == "categorical_1"
  assert schema.categorical[-1].name == "categorical_16"
  assert schema.numerical[-1].name == "numerical_63"
  assert set(schema.categorical_sizes) == {1001}
  assert all(f.encoding == "identity" for f in schema.categorical)


def test_aliexpress_like_schema_cycles_vocab_sizes():
  schema = synthetic.aliexpress_like_schema(5, 2, vocab_sizes=(3, 7))
  assert [f.vocab_size for f in schema.categorical] == [3, 7, 3, 7, 3]
  assert schema.feature_names == ("categorical_1", "categorical_2",
                                  "categorical_3", "categorical_4",
                                  "categorical_5", "numerical_1", "numerical_2")
