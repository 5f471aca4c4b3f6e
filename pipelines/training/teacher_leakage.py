"""Does a teacher's tau carry its training rows' own labels?

A teacher of `loss.tau_source=teacher` learned its tau from the second
label (conversions) of the rows it trained on. On those rows its tau may
then rank a row's own label better than on rows it never saw: a channel a
student reading that tau can fit, which does not carry to new rows
(README, "Does adaptive relatedness help?", section 8).

`measure` scores the tau a student would read, on the training split and on
the validation split, by the AUC of -tau for the second label among the rows
where that label is observed (a funnel's clicked rows), computed within
strata and averaged (`metrics.stratified_auc`): on synthetic data the
strata are quantile bins of the planted relatedness r, so that knowing r is
not counted; elsewhere one stratum. The **leakage** of the tau a student
reads on a training row is its AUC there minus the same tau's AUC on
validation rows: about 0 when it knows no more of the training rows' labels
than of new rows'. A student reads one teacher's tau, an ensemble's mean, or
for cross-fitted teachers the tau of the teacher that never trained on the
row (adaftr_tf/folds.py): their leakage is the mean over the teachers of
(AUC on its held-out training rows − its AUC on validation rows). The
`teacher_leakage` of each teacher is the same on the rows it trained on.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf import folds as folds_lib
from adaftr_tf import metrics as M
from adaftr_tf.tasks import alignment
from pipelines.data import datadir
from pipelines.data import reader
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import teacher as teacher_lib

SPLITS = ("train", "valid")


def _read(data_dir: str, split: str, schema: F.FeatureSchema,
          teachers: Sequence[Callable], folds: int, with_oracle: bool,
          max_rows: int, batch_size: int) -> dict[str, np.ndarray]:
  """Every row of `split` (if `max_rows` > 0, of its first whole batches
  holding at least `max_rows` rows) where the second label is observed:
  `taus` `[n, K]`, `student` `[n]` (the tau a student reads there,
  `alignment.rows_teacher_tau`), `label` `[n]`, `fold` `[n]` (0 unless
  `folds`), `r` `[n]` (with the oracle)."""
  dataset = reader.make_dataset(data_dir, split, schema, batch_size,
                                training=False, with_oracle=with_oracle,
                                drop_remainder=False)
  funnel = schema.label_relation == F.FUNNEL
  parts = {"taus": [], "student": [], "label": [], "fold": [], "r": []}
  seen = 0
  for element in dataset:
    features, labels = element[0], element[1]
    observed = (labels[F.CLICK].numpy() > 0.5 if funnel
                else np.ones(labels[F.CLICK].shape[0], bool))
    taus = tf.stack([tf.reshape(t(features), [-1]) for t in teachers], axis=1)
    parts["taus"].append(taus.numpy()[observed])
    parts["student"].append(alignment.rows_teacher_tau(
        taus, features, cross_fitted=bool(folds),
        training=split == "train").numpy()[observed])
    parts["label"].append(labels[F.CONVERSION].numpy()[observed])
    parts["fold"].append(
        folds_lib.row_fold(features, folds).numpy()[observed] if folds
        else np.zeros(int(observed.sum()), np.int32))
    if with_oracle:
      parts["r"].append(element[2][F.ORACLE_RELATEDNESS].numpy()[observed])
    seen += len(observed)
    if max_rows and seen >= max_rows:
      break
  return {k: np.concatenate(v) for k, v in parts.items() if v}


def _split_report(rows: dict[str, np.ndarray], split: str,
                  cross_fitted: bool, bins: int) -> dict:
  """The split's scores (see the module docstring)."""
  taus, fold, label = rows["taus"], rows["fold"], rows["label"]
  strata = (M.quantile_strata(rows["r"], bins) if "r" in rows
            else np.zeros(len(fold), np.int32))

  def score(tau, keep=slice(None)):
    return M.stratified_auc(label[keep], -tau[keep], strata[keep])

  report = {"rows": int(len(fold)), "positives": int(label.sum()),
            "student_auc": score(rows["student"]),
            "teacher_auc": [score(taus[:, k]) for k in range(taus.shape[1])]}
  if cross_fitted and split == "train":
    report["held_out_auc"] = [score(taus[:, k], fold == k)
                              for k in range(taus.shape[1])]
    report["in_sample_auc"] = [score(taus[:, k], fold != k)
                               for k in range(taus.shape[1])]
  if "r" in rows:
    report["spearman_neg_tau_vs_r"] = M.spearman(-rows["student"], rows["r"])
  return report


def measure(data_dir: str, teacher_dirs: Sequence[str], bins: int = 20,
            max_rows: int = 0, batch_size: int = 8192) -> dict:
  """The leakage report of teachers (as `loss.teacher_dir` lists them) on a
  data directory of their schema.

  Returns a dict: `teachers`, `kind` (single, ensemble or cross_fitted),
  `strata`, per split of SPLITS `rows`, `positives`, `student_auc`,
  `teacher_auc` (one per teacher), cross-fitted training rows also
  `held_out_auc` and `in_sample_auc`, with the oracle
  `spearman_neg_tau_vs_r`; `leakage` (the student's tau) and
  `teacher_leakage` (one per teacher), as the module docstring says.

  Raises:
    ValueError: one line, as `teacher.check` (no trained model, no tau of
      its own, another schema, folds out of order); no teacher; `bins` < 1.
  """
  if bins < 1:
    raise ValueError(f"bins must be >= 1, got {bins}")
  if not teacher_dirs:
    raise ValueError("no teacher directory given")
  schema = F.FeatureSchema.load(data_dir)
  configs, cross_fitted = teacher_lib.check_dirs(list(teacher_dirs), schema)
  models = [model_dir_lib.load_trained(d)[0] for d in teacher_dirs]
  taus = [tf.function(m.instance_tau) for m in models]
  with_oracle = datadir.has_oracle(data_dir)
  folds = len(teacher_dirs) if cross_fitted else 0
  result = {"teachers": list(teacher_dirs),
            "kind": ("cross_fitted" if cross_fitted else
                     "ensemble" if len(configs) > 1 else "single"),
            "strata": (f"{bins} quantile bins of the planted relatedness r"
                       if with_oracle else "none (no planted relatedness)")}
  for split in SPLITS:
    rows = _read(data_dir, split, schema, taus, folds, with_oracle, max_rows,
                 batch_size)
    result[split] = _split_report(rows, split, cross_fitted, bins)
  train, valid = result["train"], result["valid"]
  own_rows = train.get("in_sample_auc", train["teacher_auc"])
  result["teacher_leakage"] = [a - b for a, b in zip(own_rows,
                                                     valid["teacher_auc"])]
  result["leakage"] = (
      float(np.mean([a - b for a, b in zip(train["held_out_auc"],
                                           valid["teacher_auc"])]))
      if cross_fitted else train["student_auc"] - valid["student_auc"])
  return result


def format_report(result: dict) -> str:
  """The report as a few lines of text."""
  lines = [f"teachers ({result['kind']}): {', '.join(result['teachers'])}",
           f"strata: {result['strata']}",
           "AUC of -tau for the second label among the rows where it is "
           "observed, within strata:"]
  for split in SPLITS:
    part = result[split]
    line = (f"  {split}: {part['rows']} rows with the label observed, "
            f"{part['positives']} positives; "
            f"the student's tau {part['student_auc']:.4f}; each teacher "
            + ", ".join(f"{v:.4f}" for v in part["teacher_auc"]))
    if "held_out_auc" in part:
      line += ("; on its held-out rows " + ", ".join(
          f"{v:.4f}" for v in part["held_out_auc"]) + ", on its own rows "
               + ", ".join(f"{v:.4f}" for v in part["in_sample_auc"]))
    if "spearman_neg_tau_vs_r" in part:
      line += f"; Spearman(-tau, r) {part['spearman_neg_tau_vs_r']:.4f}"
    lines.append(line)
  lines.append("leakage (AUC on training rows - on validation rows): the "
               f"student's tau {result['leakage']:+.4f}; each teacher on the "
               "rows it trained on " + ", ".join(
                   f"{v:+.4f}" for v in result["teacher_leakage"]))
  return "\n".join(lines)
