"""Which fields does a linear gate teacher read?

A linear relatedness network on the field embeddings is a sum of per-field
parts (adaftr_tf/tasks/teacher_fields.py). `measure` reads a teacher's
parts on the training split in batches of the teacher's own training batch
size (what a student's batches hold) and reports, per field, its mean share
of the logit's variance in a batch and the fraction of batches in which
`loss.teacher_field_share=share` keeps it. On synthetic data it also names
the fields the planted relatedness r is a function of, and gives
Spearman(-tau, r) on the validation split for the teacher read through every
field and through the kept ones: what pruning buys in knowledge of r.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf import metrics as M
from adaftr_tf.tasks import teacher_fields
from pipelines.data import reader
from pipelines.data import synthetic
from pipelines.training import model_dir as model_dir_lib
from pipelines.training import teacher as teacher_lib


def _batches(data_dir, split, schema, batch_size, max_rows, with_oracle):
  """The split's first whole batches holding at least `max_rows` rows (0:
  every batch)."""
  seen = 0
  for element in reader.make_dataset(data_dir, split, schema, batch_size,
                                     training=False, with_oracle=with_oracle,
                                     drop_remainder=False):
    yield element
    seen += int(element[1][F.CLICK].shape[0])
    if max_rows and seen >= max_rows:
      return


def measure(data_dir: str, teacher_dir: str, share: float,
            max_rows: int = 0) -> dict:
  """The field report of a linear teacher on a data directory of its schema.

  Returns a dict: `teacher`, `share`, `batch_size`, `batches`, `fields` (per
  field in embedding order: `name`, `mean_share`, `kept_fraction`, and on
  synthetic data `in_r`), on synthetic data `spearman_neg_tau_vs_r` with
  `all_fields` and `kept_fields` (validation split).

  Raises:
    ValueError: one line, as `teacher.check_dir` (no trained model, no tau
      of its own, another schema) or a teacher that is not linear on the
      embeddings; `share` outside [0, 1). A teacher trained without a fold
      (`train.folds`) is reported like any other.
  """
  if not 0.0 <= share < 1.0:
    raise ValueError(f"share must lie in [0, 1), got {share}")
  schema = F.FeatureSchema.load(data_dir)
  config = teacher_lib.check_dir(teacher_dir, schema)   # any rows: a fold's too
  teacher_lib.check_linear(teacher_dir, config, "the field report")
  model = model_dir_lib.load_trained(teacher_dir)[0]
  kernel, _ = model.alignment_task.alignment.relatedness.linear_weights()
  names = ([f.name for f in schema.categorical]
           + [f.name for f in schema.numerical])

  @tf.function
  def shares(features):
    x, _ = model._embed(features)
    return teacher_fields.field_shares(
        teacher_fields.field_parts(x, kernel, len(names)))

  batch_size = config.train.batch_size
  per_batch = np.array([shares(element[0]).numpy() for element in _batches(
      data_dir, "train", schema, batch_size, max_rows, False)])
  world = synthetic.stored_config(data_dir)
  in_r = set(synthetic.relatedness_fields(world)) if world else None
  fields = []
  for j, name in enumerate(names):
    field = {"name": name, "mean_share": float(per_batch[:, j].mean()),
             "kept_fraction": float((per_batch[:, j] >= share).mean())}
    if in_r is not None:
      field["in_r"] = name in in_r
    fields.append(field)
  result = {"teacher": teacher_dir, "share": share, "batch_size": batch_size,
            "batches": len(per_batch), "fields": fields}
  if world:
    result["spearman_neg_tau_vs_r"] = _spearman(
        data_dir, schema, model, share, batch_size, max_rows)
  return result


def _spearman(data_dir, schema, model, share, batch_size, max_rows) -> dict:
  """Spearman(-tau, r) on the validation split, every field and kept ones."""
  tau = {"all_fields": tf.function(model.instance_tau),
         "kept_fields": tf.function(
             lambda f: model.instance_tau(f, min_field_share=share))}
  values = {k: [] for k in tau}
  r = []
  for features, _, oracle in _batches(data_dir, "valid", schema, batch_size,
                                      max_rows, True):
    for k, fn in tau.items():
      values[k].append(fn(features).numpy().reshape(-1))
    r.append(oracle[F.ORACLE_RELATEDNESS].numpy().reshape(-1))
  r = np.concatenate(r)
  return {k: M.spearman(-np.concatenate(v), r) for k, v in values.items()}


def format_report(result: dict, top: int = 12) -> str:
  """The report as a few lines of text: the `top` fields by mean share."""
  fields = sorted(result["fields"], key=lambda f: -f["mean_share"])
  kept = [f for f in fields if f["kept_fraction"] >= 0.5]
  lines = [f"teacher: {result['teacher']}",
           f"{result['batches']} training batches of {result['batch_size']} "
           f"rows; share {result['share']}: {len(kept)} of {len(fields)} "
           "fields kept in at least half of the batches",
           "field, mean share of the logit's variance, fraction of batches "
           "kept" + (", in r" if "in_r" in fields[0] else "") + ":"]
  for f in fields[:top]:
    mark = ("" if "in_r" not in f else "  in r" if f["in_r"] else "")
    lines.append(f"  {f['name']:24s} {f['mean_share']:.4f}  "
                 f"{f['kept_fraction']:.2f}{mark}")
  if "spearman_neg_tau_vs_r" in result:
    s = result["spearman_neg_tau_vs_r"]
    missed = [f["name"] for f in fields if f.get("in_r") and
              f["kept_fraction"] < 0.5]
    lines.append(f"Spearman(-tau, r) on validation rows: every field "
                 f"{s['all_fields']:.4f}, kept fields {s['kept_fields']:.4f}"
                 + (f"; fields of r not kept: {', '.join(missed)}"
                    if missed else ""))
  return "\n".join(lines)
