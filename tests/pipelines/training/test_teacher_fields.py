"""Tests of pipelines/training/teacher_fields.py: the field report of a
linear gate teacher (values against numpy on the same rows) and its
one-line refusals."""

import numpy as np
import pytest

from adaftr_tf import features as F
from adaftr_tf import metrics as M
from pipelines.data import reader
from pipelines.data import synthetic
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import teacher_fields
from tests.helpers.jobs import copy_run_with


def _rows(data_dir, split, schema, batch_size, with_oracle=False):
  return next(iter(reader.make_dataset(data_dir, split, schema, batch_size,
                                       training=False,
                                       with_oracle=with_oracle)))


def test_the_report_gives_each_fields_share_and_what_pruning_keeps(
    tiny_run, tiny_linear_teacher):
  """On one batch (max_rows = the teacher's batch size): each field's share
  of the logit's variance as numpy computes it from the embeddings and the
  kernel, kept where it reaches the share; the fields of r named; the
  Spearman of -tau with r through every field and the kept ones."""
  data_dir = tiny_run["data_dir"]
  model, config, schema = model_dir_lib.load_trained(tiny_linear_teacher)
  batch = config.train.batch_size
  features, _ = _rows(data_dir, "train", schema, batch)
  x = model._embed(features)[0].numpy()
  kernel, _ = model.alignment_task.alignment.relatedness.linear_weights()
  names = [f.name for f in schema.categorical] + [f.name for f in
                                                  schema.numerical]
  parts = (x.reshape(len(x), len(names), -1)
           * kernel.numpy().reshape(len(names), -1)).sum(-1)
  shares = parts.var(0) / parts.var(0).sum()
  share = float(np.sort(shares)[-3:-1].mean())   # keeps two fields
  result = teacher_fields.measure(data_dir, tiny_linear_teacher, share,
                                  max_rows=batch)
  assert (result["batches"], result["batch_size"]) == (1, batch)
  assert [f["name"] for f in result["fields"]] == names
  np.testing.assert_allclose([f["mean_share"] for f in result["fields"]],
                             shares, rtol=1e-4, atol=1e-6)
  assert [f["kept_fraction"] for f in result["fields"]] == list(
      (shares >= share).astype(float))
  in_r = synthetic.relatedness_fields(synthetic.stored_config(data_dir))
  assert {f["name"] for f in result["fields"] if f["in_r"]} == set(in_r)
  valid, _, oracle = _rows(data_dir, "valid", schema, batch, True)
  r = oracle[F.ORACLE_RELATEDNESS].numpy().reshape(-1)
  spearman = result["spearman_neg_tau_vs_r"]
  assert spearman["all_fields"] == pytest.approx(
      M.spearman(-model.instance_tau(valid).numpy(), r), abs=1e-6)
  assert spearman["kept_fields"] == pytest.approx(M.spearman(
      -model.instance_tau(valid, min_field_share=share).numpy(), r), abs=1e-6)
  assert spearman["kept_fields"] != spearman["all_fields"]
  report = teacher_fields.format_report(result)
  assert f"share {share}: 2 of {len(names)} fields kept" in report
  assert f"kept fields {spearman['kept_fields']:.4f}" in report


def test_share_zero_keeps_every_field_and_a_fold_teacher_is_reported(
    tiny_run, tiny_linear_teacher, tmp_path):
  """A cross-fitted fold teacher (here a copy marked as trained without fold
  1 of 2) is reported alone like any teacher."""
  fold = copy_run_with(tiny_linear_teacher, tmp_path / "fold1of2",
                       model_dir_lib.CONFIG_FILE,
                       lambda c: c["train"].update(folds=2, holdout_fold=1))
  result = teacher_fields.measure(tiny_run["data_dir"], fold, 0.0,
                                  max_rows=256)
  assert all(f["kept_fraction"] == 1.0 for f in result["fields"])
  assert sum(f["mean_share"] for f in result["fields"]) == pytest.approx(
      1.0, abs=1e-5)
  spearman = result["spearman_neg_tau_vs_r"]
  assert spearman["kept_fields"] == spearman["all_fields"]


def test_a_teacher_that_is_not_linear_or_a_bad_share_is_refused(tiny_run):
  with pytest.raises(ValueError, match=r"the field report reads a linear "
                     r"teacher on the embeddings; loss\.teacher_dir=.* has "
                     r"model\.relatedness_units=\[.+\]"):
    teacher_fields.measure(tiny_run["data_dir"], tiny_run["model_dir"], 0.03)
  with pytest.raises(ValueError, match=r"share must lie in \[0, 1\), got 1\.0"):
    teacher_fields.measure(tiny_run["data_dir"], tiny_run["model_dir"], 1.0)
