"""Ratios, targets and tables of a speed benchmark run.

`summarise(rows)` turns the measured rows into the result dict written as
JSON; `markdown(result)` is the table printed (and pasted into
the README section "Performance").
"""

from __future__ import annotations

# name -> (numerator row, denominator row, minimum, what it says)
TARGETS = {
    "real_to_reference": ("real/adaftr", "reference/adaftr", 0.9,
                          "real path / minimal tf.function loop (AdaFTR)"),
    "adaftr_to_no_cl": ("real/adaftr", "real/no_cl", 0.9,
                        "AdaFTR / same backbone without InfoNCE (real path)"),
    "input_to_training": ("input", "real/adaftr", 5.0,
                          "input pipeline / AdaFTR training (real path)"),
}
# Extra ratios reported beside the targets (no target of their own).
EXTRA_RATIOS = {
    "ratio_real_to_reference_no_cl": ("real/no_cl", "reference/no_cl"),
    "ratio_adaftr_to_no_cl_reference": ("reference/adaftr", "reference/no_cl"),
    "ratio_input_to_training_no_cl": ("input", "real/no_cl"),
    # The real-to-reference gap in two: file input, then Keras fit itself.
    "ratio_real_to_real_cached": ("real/adaftr", "real_cached/adaftr"),
    "ratio_real_cached_to_reference": ("real_cached/adaftr",
                                       "reference/adaftr"),
}
BASELINE = "real/adaftr"   # what variant and prototype rows compare with


def _speed(rows, key, field):
  row = rows.get(key)
  return None if row is None else row.get(field)


def ratio(rows, numerator, denominator, field="examples_per_s"):
  """`field` (examples/s) of one row over another's; None if one is missing.

  With field="examples_per_cpu_s" the ratio of CPU cost per example, which
  other jobs on a shared machine hardly change.
  """
  a, b = _speed(rows, numerator, field), _speed(rows, denominator, field)
  return None if a is None or not b else a / b


def summarise(rows: dict[str, dict]) -> dict:
  """Ratios (top-level keys), targets and per-row relative speeds."""
  out, targets = {}, {}
  cpu = "examples_per_cpu_s"
  for name, (num, den, minimum, meaning) in TARGETS.items():
    value, per_cpu = ratio(rows, num, den), ratio(rows, num, den, cpu)
    out[f"ratio_{name}"] = value
    out[f"cpu_ratio_{name}"] = per_cpu
    targets[name] = {"ratio": value, "target": minimum, "meaning": meaning,
                     "met": None if value is None else value >= minimum,
                     "cpu_ratio": per_cpu,
                     "met_per_cpu": None if per_cpu is None
                                    else per_cpu >= minimum,
                     "numerator": num, "denominator": den}
  for key, (num, den) in EXTRA_RATIOS.items():
    out[key] = ratio(rows, num, den)
    out["cpu_" + key] = ratio(rows, num, den, cpu)
  out["targets"] = targets
  for key, row in rows.items():
    base = None
    if row.get("group") in ("variant", "prototype"):
      base, name = BASELINE, "relative_to_real_adaftr"
    if row.get("group") == "scale":
      base, name = f"scale/{key.split('/')[1]}/adam", "relative_to_adam"
    if base:
      row[name] = ratio(rows, key, base)
      row[name + "_per_cpu"] = ratio(rows, key, base, cpu)
  return out


def _fmt(value, digits=0):
  if value is None:
    return "—"
  return f"{value:,.{digits}f}"


def table(rows: dict[str, dict]) -> str:
  """Markdown table: one line per measurement."""
  lines = ["| row | what | examples/s | examples/CPU-s | cores used | "
           "vs base (wall / CPU) | peak RSS MiB | table rows |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for key, row in rows.items():
    if row.get("group") == "paired" and not row.get("error"):
      continue   # its own table
    if row.get("error"):
      lines.append(f"| {key} | {row['description']} | failed: "
                   f"{row['error'][:80]} | | | | | |")
      continue
    name = ("relative_to_real_adaftr" if "relative_to_real_adaftr" in row
            else "relative_to_adam")
    base = ""
    if row.get(name) is not None:
      base = f"{_fmt(row[name], 2)}× / {_fmt(row.get(name + '_per_cpu'), 2)}×"
    lines.append(
        f"| {key} | {row['description']} | {_fmt(row.get('examples_per_s'))}"
        f" | {_fmt(row.get('examples_per_cpu_s'))} | "
        f"{_fmt(row.get('cpu_utilisation'), 2)} | {base} | "
        f"{_fmt(row.get('peak_rss_mb'))} | {_fmt(row.get('table_rows'))} |")
  return "\n".join(lines)


def paired_table(row: dict) -> str:
  """The paired row's entries: speed and ratio to the first entry."""
  lines = ["| paired entry (reference step) | examples/s | examples/CPU-s | "
           "cores used | vs adaftr (wall / CPU) |",
           "| --- | ---: | ---: | ---: | ---: |"]
  for name, e in row["entries"].items():
    lines.append(f"| {name} | {_fmt(e['examples_per_s'])} | "
                 f"{_fmt(e['examples_per_cpu_s'])} | "
                 f"{_fmt(e['cpu_utilisation'], 2)} | {_fmt(e['relative'], 2)}"
                 f"× / {_fmt(e['relative_per_cpu'], 2)}× |")
  return "\n".join(lines)


def targets_table(summary: dict) -> str:
  lines = ["| target | ratio (wall) | met | ratio (per CPU-s) | met | "
           "required |", "| --- | ---: | --- | ---: | --- | ---: |"]
  word = {True: "yes", False: "**no**", None: "—"}
  for name, t in summary["targets"].items():
    lines.append(f"| {name} ({t['meaning']}) | {_fmt(t['ratio'], 2)} | "
                 f"{word[t['met']]} | {_fmt(t['cpu_ratio'], 2)} | "
                 f"{word[t['met_per_cpu']]} | ≥ {t['target']:g} |")
  return "\n".join(lines)


def markdown(result: dict) -> str:
  """Both tables plus the extra ratios, as printed at the end of a run."""
  extra = ", ".join(f"{k} = {_fmt(result[k], 2)} (per CPU-s "
                    f"{_fmt(result['cpu_' + k], 2)})" for k in EXTRA_RATIOS)
  parts = [table(result["rows"])]
  paired = result["rows"].get("paired/reference")
  if paired and not paired.get("error"):
    parts.append(paired_table(paired))
  return "\n\n".join(parts + [targets_table(result), extra])
