"""The main objective of a run and the names of what it reports and serves.

Two objectives over the model's two task logits (a, b) (models.py):
  * `funnel` (CTR/CVR data, ESMM's entire space): BCE(click, σ(a)) +
    BCE(conversion, σ(a)σ(b)) over every impression; reported as `ctr` (all
    impressions), `cvr` (clicked impressions only) and `ctcvr` (all).
  * `independent` (any two binary tasks, e.g. census income and marital
    status): BCE(first label, σ(a)) + BCE(second label, σ(b)) over every
    row, no product; reported and served under the schema's label names.
`model.objective=auto` takes the data's relation (`schema.label_relation`);
the funnel needs funnel data (the second label must imply the first).
"""

from __future__ import annotations

import dataclasses

from adaftr_tf import features as F

AUTO = "auto"
MEAN_AUC = "mean_auc"  # the independent objective's mean of its task AUCs


@dataclasses.dataclass(frozen=True)
class Reported:
  """One reported prediction.

  Attributes:
    name: metric prefix (`{name}_auc`, ...) and serving output key.
    output: the model output key holding its probability (F.CTR, F.CVR,
      F.CTCVR).
    label: the in-memory label key (F.CLICK: first task, F.CONVERSION:
      second).
    clicked_only: measured on rows whose first label is 1 (funnel CVR).
  """

  name: str
  output: str
  label: str
  clicked_only: bool = False


@dataclasses.dataclass(frozen=True)
class Objective:
  """A resolved objective: `kind` (F.FUNNEL or F.INDEPENDENT) and the
  record names of the two labels (`labels`)."""

  kind: str = F.FUNNEL
  labels: tuple[str, str] = F.LABEL_KEYS

  @property
  def reported(self) -> tuple[Reported, ...]:
    """What evaluation reports, in order (see the module docstring)."""
    if self.kind == F.FUNNEL:
      return (Reported(F.CTR, F.CTR, F.CLICK),
              Reported(F.CVR, F.CVR, F.CONVERSION, clicked_only=True),
              Reported(F.CTCVR, F.CTCVR, F.CONVERSION))
    first, second = self.labels
    return (Reported(first, F.CTR, F.CLICK),
            Reported(second, F.CVR, F.CONVERSION))

  @property
  def serving_outputs(self) -> dict[str, str]:
    """Serving output name -> model output key."""
    return {r.name: r.output for r in self.reported}

  @property
  def checkpoint_metrics(self) -> tuple[str, ...]:
    """The validation metrics that can pick the best epoch."""
    if self.kind == F.FUNNEL:
      return ("val_ctcvr_auc", "val_ctr_auc", "val_cvr_auc", "val_loss")
    return (f"val_{MEAN_AUC}", "val_loss")

  def checkpoint_metric(self, configured: str) -> str:
    """`train.checkpoint_metric` for this objective (`auto`: CTCVR AUC for
    the funnel, the mean task AUC otherwise); ValueError if it names a
    metric this objective does not report."""
    if configured == AUTO:
      return self.checkpoint_metrics[0]
    if configured not in self.checkpoint_metrics:
      raise ValueError(
          f"train.checkpoint_metric={configured!r} is not reported by the "
          f"{self.kind} objective (tasks {', '.join(self.labels)}); choose "
          f"one of {(AUTO, *self.checkpoint_metrics)}")
    return configured


FUNNEL_OBJECTIVE = Objective()
FUNNEL_TASKS = tuple(r.name for r in FUNNEL_OBJECTIVE.reported)


def task_names(report) -> tuple[str, ...]:
  """The reported tasks of an evaluation report (its keys), in order: ctr,
  cvr, ctcvr for the funnel, the label names for independent tasks."""
  if all(f"{t}_auc" in report for t in FUNNEL_TASKS):
    return FUNNEL_TASKS
  return tuple(k[:-len("_auc")] for k in report
               if k.endswith("_auc") and not k.startswith("oracle_")
               and k != MEAN_AUC)


def resolve(configured: str, schema: F.FeatureSchema) -> Objective:
  """The objective `model.objective` (`auto`, `funnel`, `independent`) asks
  for on data with `schema`.

  Raises:
    ValueError: the funnel on data whose labels are independent.
  """
  kind = schema.label_relation if configured == AUTO else configured
  if kind == F.FUNNEL and schema.label_relation != F.FUNNEL:
    raise ValueError(
        f"model.objective=funnel needs funnel labels (the second implies "
        f"the first); this data's labels {schema.labels} are "
        f"{schema.label_relation}: use model.objective=independent or auto")
  return Objective(kind, schema.labels)
