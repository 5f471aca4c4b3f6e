"""The data report: every row read is kept, skipped or dropped, and counted.

Written as `data_report.json` next to the shards (training reads
`splits.<split>.rows`) and printed. Per split: rows read and kept, bad rows
skipped (by kind), unjoined rows, NaN/Inf numerical values replaced by the
default (`--non_finite=replace`, per field), the positives and rate of each
label under its record name (`labels`); for funnel data (click ->
conversion) also the click, conversion and post-click conversion rates and
the conversions without a click (dropped by default). Per field: encoding,
vocabulary size, train cardinality, OOV rate per split (and list length for
multivalent fields, mean/std for numerical ones).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F

REPORT_FILE = "data_report.json"


@dataclasses.dataclass
class SplitCounts:
  """What happened to the rows routed to one output split.

  Attributes:
    labels: the record names of the first and second label.
    relation: `F.FUNNEL` (click -> conversion: the conversion keys and the
      conversions without a click are reported) or `F.INDEPENDENT`.
    positives: kept rows whose first / second label is 1.
  """

  labels: tuple[str, str] = F.LABEL_KEYS
  relation: str = F.FUNNEL
  skipped: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  kept: int = 0
  unjoined: int = 0
  dropped_conversion_without_click: int = 0
  conversions_without_click: int = 0
  positives: list[int] = dataclasses.field(default_factory=lambda: [0, 0])
  shards: int = 0
  non_finite_replaced: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)

  @property
  def read(self) -> int:
    return (self.kept + sum(self.skipped.values()) + self.unjoined
            + self.dropped_conversion_without_click)

  def add_labels(self, first: np.ndarray, second: np.ndarray) -> None:
    """Counts kept rows and their labels ([n] int64 0/1 each)."""
    self.kept += len(first)
    self.positives[0] += int(first.sum())
    self.positives[1] += int(second.sum())

  def to_dict(self) -> dict:
    rows = self.kept
    result = {
        "rows": rows, "read": self.read,
        "skipped_bad_rows": sum(self.skipped.values()),
        "skipped_by_kind": dict(sorted(self.skipped.items())),
        "unjoined": self.unjoined,
        # Per label (by record name): kept rows where it is 1, and their rate.
        "labels": {name: {"positives": n, "rate": n / rows if rows else None}
                   for name, n in zip(self.labels, self.positives)},
        "shards": self.shards,
        # --non_finite=replace: kept rows whose NaN/Inf value of a numerical
        # field was replaced by the field's default, per field.
        "non_finite_replaced": sum(self.non_finite_replaced.values()),
        "non_finite_replaced_by_field": dict(sorted(
            (k, v) for k, v in self.non_finite_replaced.items() if v))}
    if self.relation == F.FUNNEL:
      result.update(self._funnel(rows))
    return result

  def _funnel(self, rows: int) -> dict:
    """The CTR/CVR keys: clicks, conversions, their rates, the anomalies."""
    clicks, conversions = self.positives
    return {
        "dropped_conversion_without_click":
            self.dropped_conversion_without_click,
        "conversions_without_click": self.conversions_without_click,
        "clicks": clicks, "conversions": conversions,
        "click_rate": clicks / rows if rows else None,
        "conversion_rate": conversions / rows if rows else None,
        "conversion_rate_given_click":
            conversions / clicks if clicks else None}


def field_report(schema: F.FeatureSchema, cardinality: dict, oov: dict,
                 lengths: dict, moments: dict) -> dict:
  """name -> description, for every schema field."""
  fields = {}
  for f in schema.categorical:
    entry = {"kind": "categorical", "encoding": f.encoding,
             "vocab_size": f.vocab_size, "multivalent": f.multivalent,
             "train_cardinality": cardinality.get(f.name),
             "oov_rate": {split: counter[f.name].rate
                          for split, counter in oov.items()}}
    if f.multivalent:
      entry["mean_list_length"] = {
          split: (n[f.name][0] / n[f.name][1] if n[f.name][1] else None)
          for split, n in lengths.items()}
    fields[f.name] = entry
  for f in schema.numerical:
    m = moments[f.name]
    fields[f.name] = {"kind": "numerical", "mean": f.mean, "std": f.std,
                      "train_min": m.min if m.n else None,
                      "train_max": m.max if m.n else None}
  return fields


def write(directory: str, report: dict) -> str:
  path = os.path.join(directory, REPORT_FILE)
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(report, f, indent=1, sort_keys=True)
  return path


def _rate(value) -> str:
  return "-" if value is None else f"{100 * value:.3f}%"


def _funnel_rows(splits: dict) -> list[str]:
  out = [f"{'split':<6} {'read':>10} {'kept':>10} {'bad':>7} "
         f"{'cv!click':>8} {'dropped':>8} {'unjoined':>8} {'CTR':>9} "
         f"{'CTCVR':>9} {'CVR':>9}"]
  for split, s in splits.items():
    out.append(
        f"{split:<6} {s['read']:>10,} {s['rows']:>10,} "
        f"{s['skipped_bad_rows']:>7,} {s['conversions_without_click']:>8,} "
        f"{s['dropped_conversion_without_click']:>8,} {s['unjoined']:>8,} "
        f"{_rate(s['click_rate']):>9} {_rate(s['conversion_rate']):>9} "
        f"{_rate(s['conversion_rate_given_click']):>9}")
    out.extend(_split_notes(s))
  return out


def _label_rows(splits: dict) -> list[str]:
  """Independent labels: the positive rate of each, by name."""
  names = list(next(iter(splits.values()))["labels"])
  out = [f"{'split':<6} {'read':>10} {'kept':>10} {'bad':>7} {'unjoined':>8}"
         + "".join(f" {name:>16}" for name in names)]
  for split, s in splits.items():
    out.append(f"{split:<6} {s['read']:>10,} {s['rows']:>10,} "
               f"{s['skipped_bad_rows']:>7,} {s['unjoined']:>8,}"
               + "".join(f" {_rate(s['labels'][name]['rate']):>16}"
                         for name in names))
    out.extend(_split_notes(s))
  return out


def _split_notes(s: dict) -> list[str]:
  out = []
  if s["skipped_by_kind"]:
    out.append(f"       bad rows by kind: {s['skipped_by_kind']}")
  if s.get("non_finite_replaced"):
    out.append(f"       non-finite values replaced by the default: "
               f"{s['non_finite_replaced_by_field']}")
  return out


def format_text(report: dict) -> str:
  """A readable summary of a report dict."""
  out = [f"data report: {report['format']} from {report['input']}"]
  funnel = report.get("label_relation", F.FUNNEL) == F.FUNNEL
  out.extend((_funnel_rows if funnel else _label_rows)(report["splits"]))
  out.append("fields (vocab = embedding rows without OOV; card = distinct in "
             "train; OOV per split):")
  for name, f in report["fields"].items():
    if f["kind"] == "numerical":
      out.append(f"  {name:<16} numerical  mean {f['mean']:.4g} std "
                 f"{f['std']:.4g}")
      continue
    oov = " ".join(f"{k}={_rate(v)}" for k, v in f["oov_rate"].items())
    multi = " list" if f["multivalent"] else ""
    out.append(f"  {name:<16} {f['encoding']:<10} vocab {f['vocab_size']:>9,} "
               f"card {f['train_cardinality'] or '-':>9}  OOV {oov}{multi}")
  for key in ("unknown_fields", "sources", "blank_lines"):
    if report.get(key):
      out.append(f"{key}: {report[key]}")
  for example in report.get("bad_row_examples", []):
    out.append(f"  bad row: {example}")
  return "\n".join(out)
