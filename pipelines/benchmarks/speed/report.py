"""Ratios, targets and tables of a speed benchmark run.

`summarise(rows)` turns the measured rows into the result dict written as
JSON; `markdown(result)` is the table printed (and pasted into
the README section "Performance").
"""

from __future__ import annotations

from pipelines.benchmarks.speed import plan as plan_lib

CPU = "examples_per_cpu_s"
WORD = {True: "yes", False: "**no**", None: "—"}   # a target met
# In row keys, "{layout}" is the config's data.layout (row blocks by default).
# name -> (numerator row, denominator row, minimum, what it says)
TARGETS = {
    "real_to_reference": ("real/adaftr", "reference/adaftr", 0.9,
                          "real path / minimal tf.function loop (AdaFTR)"),
    "adaftr_to_no_cl": ("real/adaftr", "real/no_cl", 0.9,
                        "AdaFTR / same backbone without InfoNCE (real path)"),
    "input_to_training": ("input/{layout}", "real/adaftr", 5.0,
                          "input pipeline / AdaFTR training (real path)"),
}
# Extra ratios reported beside the targets (no target of their own).
EXTRA_RATIOS = {
    "ratio_real_to_reference_no_cl": ("real/no_cl", "reference/no_cl"),
    "ratio_adaftr_to_no_cl_reference": ("reference/adaftr", "reference/no_cl"),
    "ratio_input_to_training_no_cl": ("input/{layout}", "real/no_cl"),
    # The real-to-reference gap in two: file input, then Keras fit itself.
    "ratio_real_to_real_cached": ("real/adaftr", "real_cached/adaftr"),
    "ratio_real_cached_to_reference": ("real_cached/adaftr",
                                       "reference/adaftr"),
}
BASELINE = "real/adaftr"   # what variant and prototype rows compare with
# Issue 15's targets for the record layouts: name -> (numerator row,
# denominator row, field compared, bound, required, what it says).
LAYOUT_TARGETS = {
    "input_to_step": ("input/{layout}", "reference/adaftr", CPU, ">=", 20.0,
                      "input ({layout}) / AdaFTR training step, examples "
                      "per CPU-s"),
    "real_to_reference": ("real/adaftr", "reference/adaftr", "examples_per_s",
                          ">=", 0.95, "real path ({layout}) / reference "
                          "loop, examples/s"),
    "input_memory_blocks_to_rows": ("input/blocks", "input/rows",
                                    "peak_rss_mb", "<=", 1.0,
                                    "peak RSS, row-block input / per-row "
                                    "input"),
}


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


def layouts(rows: dict[str, dict], layout: str = "blocks") -> dict:
  """Per record layout: its input row's decode rate (examples per CPU-s),
  input / AdaFTR training step per CPU-s, its real row / the reference loop
  (wall), and the input row's peak memory."""
  out = {}
  for name in plan_lib.LAYOUT_ROWS:
    inp, real = f"input/{name}", plan_lib.real_key(name, layout)
    out[name] = {
        "input_row": inp, "real_row": real,
        "input_examples_per_s": _speed(rows, inp, "examples_per_s"),
        "decode_examples_per_cpu_s": _speed(rows, inp, CPU),
        "input_to_step_per_cpu": ratio(rows, inp, "reference/adaftr", CPU),
        "real_examples_per_s": _speed(rows, real, "examples_per_s"),
        "real_to_reference": ratio(rows, real, "reference/adaftr"),
        "input_peak_rss_mb": _speed(rows, inp, "peak_rss_mb")}
  return out


def projection(per_layout: dict, step_rates) -> dict:
  """Host cores one accelerator needs to decode its input at each step rate
  (examples/s): step rate / the layout's decode examples per CPU-second."""
  cores = {}
  for name, figures in per_layout.items():
    rate = figures["decode_examples_per_cpu_s"]
    cores[name] = [step / rate if rate else None for step in step_rates]
  return {"step_rates": list(step_rates), "cores": cores}


def _met(value, bound: str, required: float):
  """Whether `value` meets `bound` (">=" or "<=") `required`; None if it
  was not measured."""
  if value is None:
    return None
  return value >= required if bound == ">=" else value <= required


def summarise(rows: dict[str, dict], layout: str = "blocks",
              step_rates=()) -> dict:
  """Ratios (top-level keys), targets, the layouts' figures, the per-core
  projection (`step_rates`, examples/s) and per-row relative speeds;
  `layout` is the config's data.layout."""
  out, targets, layout_targets = {}, {}, {}
  for name, (num, den, minimum, meaning) in TARGETS.items():
    num = num.format(layout=layout)
    value, per_cpu = ratio(rows, num, den), ratio(rows, num, den, CPU)
    out[f"ratio_{name}"] = value
    out[f"cpu_ratio_{name}"] = per_cpu
    targets[name] = {"ratio": value, "target": minimum, "meaning": meaning,
                     "met": _met(value, ">=", minimum),
                     "cpu_ratio": per_cpu,
                     "met_per_cpu": _met(per_cpu, ">=", minimum),
                     "numerator": num, "denominator": den}
  for key, (num, den) in EXTRA_RATIOS.items():
    num = num.format(layout=layout)
    out[key] = ratio(rows, num, den)
    out["cpu_" + key] = ratio(rows, num, den, CPU)
  out["targets"] = targets
  for name, (num, den, field, bound, required, meaning) in \
      LAYOUT_TARGETS.items():
    num = num.format(layout=layout)
    value = ratio(rows, num, den, field)
    met = _met(value, bound, required)
    layout_targets[name] = {
        "measured": value, "bound": bound, "required": required, "met": met,
        "meaning": meaning.format(layout=plan_lib.LAYOUT_WORDS[layout]),
        "numerator": num, "denominator": den, "field": field}
  out["layout_targets"] = layout_targets
  out["layouts"] = layouts(rows, layout)
  out["per_core"] = projection(out["layouts"], step_rates)
  for key, row in rows.items():
    base = None
    if row.get("group") in ("variant", "prototype"):
      base, name = BASELINE, "relative_to_real_adaftr"
    if row.get("group") == "scale":
      base, name = f"scale/{key.split('/')[1]}/adam", "relative_to_adam"
    if base:
      row[name] = ratio(rows, key, base)
      row[name + "_per_cpu"] = ratio(rows, key, base, CPU)
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
  for name, t in summary["targets"].items():
    lines.append(f"| {name} ({t['meaning']}) | {_fmt(t['ratio'], 2)} | "
                 f"{WORD[t['met']]} | {_fmt(t['cpu_ratio'], 2)} | "
                 f"{WORD[t['met_per_cpu']]} | ≥ {t['target']:g} |")
  return "\n".join(lines)


def layout_table(summary: dict) -> str:
  """One line per record layout: decode rate, ratios, input peak memory."""
  lines = ["| layout | input examples/s | decode examples/CPU-s | input / "
           "training step (per CPU-s) | real path examples/s | real / "
           "reference | input peak RSS MiB |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for name, f in summary["layouts"].items():
    cells = [f"{plan_lib.LAYOUT_WORDS[name]} ({f['input_row']}, "
             f"{f['real_row']})"]
    cells += [_fmt(f[k], digits) for k, digits in (
        ("input_examples_per_s", 0), ("decode_examples_per_cpu_s", 0),
        ("input_to_step_per_cpu", 2), ("real_examples_per_s", 0),
        ("real_to_reference", 2), ("input_peak_rss_mb", 0))]
    lines.append(_line(cells))
  return "\n".join(lines)


def _line(cells) -> str:
  """One markdown table line."""
  return "| " + " | ".join(cells) + " |"


def layout_targets_table(summary: dict) -> str:
  """Issue 15's targets: measured, required, met."""
  lines = ["| layout target | measured | required | met |",
           "| --- | ---: | ---: | --- |"]
  for name, t in summary["layout_targets"].items():
    sign = "≥" if t["bound"] == ">=" else "≤"
    lines.append(f"| {name} ({t['meaning']}) | {_fmt(t['measured'], 3)} | "
                 f"{sign} {t['required']:g} | {WORD[t['met']]} |")
  return "\n".join(lines)


def projection_table(summary: dict) -> str:
  """Host cores per accelerator at each step rate, per layout."""
  per_core = summary["per_core"]
  names = list(per_core["cores"])
  lines = [_line(["accelerator step rate (examples/s)"] + [
      f"host cores, {plan_lib.LAYOUT_WORDS[n]}" for n in names]),
           _line(["---:"] * (len(names) + 1))]
  for i, step in enumerate(per_core["step_rates"]):
    lines.append(_line([_fmt(step)] + [_fmt(per_core["cores"][n][i], 1)
                                       for n in names]))
  return "\n".join(lines)


def markdown(result: dict) -> str:
  """Every table plus the extra ratios, as printed at the end of a run."""
  extra = ", ".join(f"{k} = {_fmt(result[k], 2)} (per CPU-s "
                    f"{_fmt(result['cpu_' + k], 2)})" for k in EXTRA_RATIOS)
  parts = [table(result["rows"])]
  paired = result["rows"].get("paired/reference")
  if paired and not paired.get("error"):
    parts.append(paired_table(paired))
  parts += [targets_table(result), extra, layout_table(result),
            layout_targets_table(result)]
  if result["per_core"]["step_rates"]:
    parts.append(projection_table(result))
  return "\n\n".join(parts)
