"""Validation before publishing: the candidate must be good enough to serve.

The export job evaluates the candidate model on the validation split of its
data (`adaftr_tf.evaluation.evaluate`, exact AUCs) and refuses to publish when

  * an AUC of a reported task (`ctr_auc`, `cvr_auc`, `ctcvr_auc` for the
    funnel; `{label}_auc` for independent tasks) is not finite or is below
    its floor (`Policy.min_auc`; DEFAULT_MIN_AUC for a task it does not
    name), or
  * an AUC is more than `Policy.max_auc_drop` below the same AUC of the latest
    published version (read from its `assets.extra/metrics.json`), or
  * a task's predicted/observed ratio (of the served probabilities: after the
    fitted calibration) is further from 1 than `Policy.calibration_tolerance`
    or three standard errors of the observed rate, whichever is larger (a
    small validation split does not refuse a good model for its own noise).
The calibrators are fitted on the same validation split, so for a
calibrated model the check confirms the calibration took; for an
uncalibrated one (`train.calibration=none`) it measures the model.

Every published version stores its report in `assets.extra/metrics.json`:
{"split", "data_dir", "model_dir", "metrics": {report}}.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Mapping

from adaftr_tf import calibration as calibration_lib
from adaftr_tf import evaluation
from adaftr_tf import features as F
from pipelines.data import datadir
from pipelines.data import reader

TASKS = (F.CTR, F.CVR, F.CTCVR)
SPLIT = "valid"
DEFAULT_MIN_AUC = 0.5
DEFAULT_MAX_AUC_DROP = 0.01
DEFAULT_CALIBRATION_TOLERANCE = 0.05


def auc_key(task: str) -> str:
  """The evaluation report's AUC key of `task` (e.g. `ctr_auc`)."""
  return f"{task}_auc"


class ExportRefused(ValueError):
  """The candidate failed validation; nothing was published."""


@dataclasses.dataclass(frozen=True)
class Policy:
  """When a candidate may be published.

  Attributes:
    min_auc: task (TASKS) -> AUC floor on the validation split.
    max_auc_drop: largest allowed drop of any task's AUC below the latest
      published version; None disables the comparison.
    calibration_tolerance: largest allowed |predicted/observed - 1| (or 3
      standard errors of the observed rate, if larger); None: no check.
  """

  min_auc: Mapping[str, float] = dataclasses.field(
      default_factory=lambda: {t: DEFAULT_MIN_AUC for t in TASKS})
  max_auc_drop: float | None = DEFAULT_MAX_AUC_DROP
  calibration_tolerance: float | None = DEFAULT_CALIBRATION_TOLERANCE

  def __post_init__(self):
    unknown = sorted(set(self.min_auc) - set(TASKS))
    if unknown:
      raise ValueError(f"min_auc: unknown tasks {unknown}; valid: {TASKS}")
    if self.max_auc_drop is not None and not self.max_auc_drop >= 0:
      raise ValueError(f"max_auc_drop must be >= 0, got {self.max_auc_drop}")
    if (self.calibration_tolerance is not None
        and not self.calibration_tolerance >= 0):
      raise ValueError(f"calibration_tolerance must be >= 0, got "
                       f"{self.calibration_tolerance}")


def evaluate_candidate(model, config, schema: F.FeatureSchema,
                       data_dir: str, calibration=None) -> dict:
  """Full evaluation report on the validation split of `data_dir` of what
  the export serves: `model`'s probabilities after `calibration` (a
  `Calibration`, or None), with the model's own report under
  `uncalibrated` when they differ.

  Raises:
    ValueError: the data's schema.json differs from the model's schema.
  """
  data_schema = F.FeatureSchema.load(data_dir)
  if data_schema != schema:
    raise ValueError(f"the schema of --data_dir {data_dir} differs from the "
                     "model's schema.json: validate on the data the model was "
                     "trained for")
  dataset = reader.make_dataset(
      data_dir, SPLIT, schema, config.train.eval_batch_size, training=False,
      with_oracle=datadir.has_oracle(data_dir), with_keys=True)
  fields = evaluation.report_fields(model, config.data.group_field)
  collected = evaluation.collect(model, dataset, fields)
  score = lambda arrays: evaluation.report(
      arrays, evaluation.tau_bounds(model), model.objective, *fields)
  if calibration is None or not calibration.curves:
    return score(collected)
  report = score(calibration_lib.calibrate_collected(collected, calibration))
  report["uncalibrated"] = score(collected)
  report["calibration_method"] = calibration.method
  return report


def calibration_problem(metrics: Mapping, task: str,
                        tolerance: float) -> str | None:
  """Why `task`'s predicted/observed ratio refuses the candidate, or None."""
  ratio = metrics.get(f"{task}_pred_obs_ratio")
  if ratio is None:
    return None   # a report from before the ratio existed
  bound = max(tolerance, 3.0 * metrics.get(f"{task}_pred_obs_ratio_se", 0.0))
  if math.isfinite(ratio) and abs(ratio - 1.0) <= bound:
    return None
  return (f"{task} predicted/observed {ratio:.3f} on the {SPLIT} split is "
          f"further from 1 than {bound:.3f} (the tolerance {tolerance:g}, "
          "--calibration_tolerance, or 3 standard errors of the observed "
          "rate)")


def stored_metrics(metrics: Mapping, data_dir: str, model_dir: str) -> dict:
  """The payload of `metrics.json`."""
  return {"split": SPLIT, "data_dir": os.path.abspath(data_dir),
          "model_dir": os.path.abspath(model_dir), "metrics": dict(metrics)}


def problems(metrics: Mapping[str, float], policy: Policy,
             previous: Mapping | None = None,
             previous_version: int | None = None,
             tasks: tuple[str, ...] = TASKS) -> list[str]:
  """Reasons to refuse `metrics` (empty when the candidate may be published).

  Args:
    metrics: the candidate's evaluation report.
    policy: floors and allowed drop.
    previous: the latest published version's `metrics.json` payload, if any.
    previous_version: its version number (for the messages).
    tasks: the reported tasks (the model objective's; default the funnel's).
  """
  found = []
  for task in tasks:
    key = auc_key(task)
    value = metrics.get(key, math.nan)
    if not math.isfinite(value):
      found.append(f"{key} is {value} (no positives or negatives in the "
                   f"{SPLIT} split?)")
      continue
    floor = policy.min_auc.get(
        task, None if task in TASKS else DEFAULT_MIN_AUC)
    if floor is not None and value < floor:
      found.append(f"{key} {value:.4f} is below the floor {floor:.4f} "
                   f"(--min_{key})")
    if policy.calibration_tolerance is not None:
      problem = calibration_problem(metrics, task,
                                    policy.calibration_tolerance)
      if problem:
        found.append(problem)
    if policy.max_auc_drop is not None and previous is not None:
      before = previous.get("metrics", {}).get(key)
      if before is not None and before - value > policy.max_auc_drop:
        found.append(f"{key} {value:.4f} is {before - value:.4f} below version "
                     f"{previous_version}'s {before:.4f} (allowed drop "
                     f"{policy.max_auc_drop:.4f}, --max_auc_drop)")
  return found


def check(metrics: Mapping[str, float], policy: Policy,
          previous: Mapping | None, previous_version: int | None,
          data_dir: str, log: Callable[[str], None] = print,
          tasks: tuple[str, ...] = TASKS) -> None:
  """Raises ExportRefused listing every problem; logs what was compared."""
  if previous_version is not None and previous is None:
    log(f"version {previous_version} has no assets.extra/metrics.json: the "
        "comparison with the latest published version is skipped")
  elif previous is not None and previous.get("data_dir") != os.path.abspath(data_dir):
    log(f"note: version {previous_version} was validated on "
        f"{previous.get('data_dir')}, the candidate on {os.path.abspath(data_dir)}")
  found = problems(metrics, policy, previous, previous_version, tasks)
  if found:
    raise ExportRefused("export refused, nothing published: "
                        + "; ".join(found))
