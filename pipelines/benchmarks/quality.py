"""The quality benchmark: methods x seeds on identical splits.

Every run goes through the training job (`train_lib.train`): same data
directory, best epoch chosen on the validation split, then one pass over the
test split. A finished run is saved as `runs/METHOD-seedN/run.json` (+
`tau.npz`) the moment it ends; a rerun skips the runs whose saved config
matches, so an interrupted benchmark resumes. `results.json`/`results.md`
are rewritten after every run ("complete": false until the last).
"""

from __future__ import annotations

import functools
import io
import json
import os
import time

import numpy as np
import tensorflow as tf

from adaftr_tf import calibration as calibration_lib
from adaftr_tf import evaluation
from adaftr_tf import experiments
from adaftr_tf import features as F
from adaftr_tf import metrics
from adaftr_tf import objective as objective_lib
from adaftr_tf.config import Config
from pipelines.benchmarks import curves as curves_lib
from pipelines.benchmarks import plots
from pipelines.benchmarks import quality_plan
from pipelines.benchmarks import tables
from pipelines.data import datadir
from pipelines.data import reader
from pipelines.training import model_dir
from pipelines.training import train_lib

RUN_FILE = "run.json"
TAU_FILE = "tau.npz"
class MixedOutputError(ValueError):
  """The output folder holds a run made with another config."""


def run_one(config: Config, run_dir: str, data_dir: str | None):
  """Trains one config; returns (test report, with the calibrated
  probabilities' report under `calibrated` and each calibration method's
  under `calibrated_<method>`; collected test arrays; data_dir; validation
  report of the selected epoch)."""
  trained = train_lib.train(config, run_dir, data_dir, verbose=0,
                            log=lambda _: None)
  # Every calibration method fitted on the same validation rows (the
  # method choice is measured, not assumed): `calibrated_<method>`.
  valid, _ = train_lib.collect_split(trained, config, "valid")
  fitted = {f"calibrated_{method}": calibration_lib.fit(
      valid, method, trained["model"].objective)
            for method in calibration_lib.METHODS if method != "none"}
  report, collected = train_lib.split_report(trained, config, "test", fitted)
  report["best_epoch"] = trained["valid"]["best_epoch"]
  return report, collected, trained["data_dir"], trained["valid"]


def saved_valid_report(run_dir: str) -> dict | None:
  """The selected epoch's validation report a run's model dir holds (runs
  saved before run.json carried it), or None."""
  path = os.path.join(run_dir, model_dir.VALID_METRICS)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def tau_pair(collected) -> tuple[np.ndarray, np.ndarray] | None:
  """(tau, planted r) of a run's test arrays, when it has both."""
  if F.TAU in collected and F.ORACLE_RELATEDNESS in collected:
    return collected[F.TAU], collected[F.ORACLE_RELATEDNESS]
  return None


def aggregate(runs: list[dict]) -> dict[str, dict[str, dict]]:
  """Per method: mean and std (over seeds) of every numeric report key its
  runs share (lists and dicts, e.g. reliability bins, are left out)."""
  by_method: dict[str, list[dict]] = {}
  for run in runs:
    by_method.setdefault(run["method"], []).append(run["test"])
  summary = {}
  for method, reports in by_method.items():
    keys = [k for k, v in reports[0].items() if isinstance(v, (int, float))
            and all(k in r for r in reports)]   # older runs: no GAUC
    summary[method] = {}
    for key in keys:
      values = np.array([r[key] for r in reports], dtype=np.float64)
      summary[method][key] = {"mean": float(np.mean(values)),
                              "std": float(np.std(values)),
                              "n": int(len(values))}
  return summary


def paired_differences(runs: list[dict], split: str = "test",
                       reference: str | None = None,
                       baseline_runs: list[dict] | None = None
                       ) -> dict[str, dict]:
  """Per method with a registered baseline among the runs (with `reference`:
  every other method against that one; with `baseline_runs`, e.g. another
  output folder's runs: every method against the same method there): the
  paired (same seed) differences method - baseline on `split` (`test`, or
  `valid`: the selected epoch's validation report, what selection may read)
  of `paired_metrics`, with 95% t intervals, and (with `adaftr_<B>_oracle`
  among the runs) the fraction of the oracle's mean CVR AUC gain it
  recovers."""
  by = {(r["method"], r["seed"]): r[split] for r in runs if r.get(split)}
  base = by if baseline_runs is None else {
      (r["method"], r["seed"]): r[split] for r in baseline_runs
      if r.get(split)}
  keys = [k for k in (tables.paired_metrics(
      objective_lib.task_names(runs[0]["test"])) if runs else ())
          if all(k in report for report in (*by.values(), *base.values()))]
  paired = {}
  for name in dict.fromkeys(r["method"] for r in runs):
    if baseline_runs is not None:
      baseline = name
    else:
      baseline = (experiments.get_method(name).baseline if reference is None
                  else reference if name != reference else None)
    seeds = sorted(s for (m, s) in by if m == name and (baseline, s) in base)
    if not seeds:
      continue
    entry = {"baseline": baseline, "seeds": seeds}
    for key in keys:
      diffs = [by[(name, s)][key] - base[(baseline, s)][key] for s in seeds]
      entry[key] = dict(zip(("mean", "low", "high"),
                            metrics.paired_interval(diffs)))
    paired[name] = entry
  for name, entry in paired.items():
    oracle = (paired.get(f"adaftr_{entry['baseline']}_oracle")
              if baseline_runs is None else None)
    gain = oracle["cvr_auc"]["mean"] if oracle and "cvr_auc" in oracle else (
        float("nan"))
    entry["fraction_of_oracle_cvr_gain"] = (
        entry["cvr_auc"]["mean"] / gain if oracle and gain > 0
        else float("nan"))
  return paired


def read_runs(output_dir: str) -> list[dict]:
  """The finished runs of another benchmark output folder (its
  results.json); ValueError naming the folder when it has none."""
  path = os.path.join(output_dir, "results.json")
  if not tf.io.gfile.exists(path):
    raise ValueError(f"--baseline_dir={output_dir} holds no results.json: "
                     "name the output folder of a benchmark run")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)["runs"]


def _write_text(path: str, text: str) -> None:
  """Writes `path` under a temporary name, then renames it (atomic)."""
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(text)
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def save_run(run_dir: str, run: dict, taus) -> None:
  """Writes one finished run (report + config) and its tau arrays, atomically."""
  tf.io.gfile.makedirs(run_dir)
  if taus is not None:
    tmp = os.path.join(run_dir, "tau.tmp.npz")
    buffer = io.BytesIO()   # a zip archive: written with seeks, in memory
    np.savez(buffer, tau=taus[0], relatedness=taus[1])
    with tf.io.gfile.GFile(tmp, "wb") as f:
      f.write(buffer.getvalue())
    tf.io.gfile.rename(tmp, os.path.join(run_dir, TAU_FILE), overwrite=True)
  _write_text(os.path.join(run_dir, RUN_FILE),
              json.dumps(run, indent=1, sort_keys=True))


def load_run(run_dir: str, config: Config):
  """(run, tau pair or None) of a finished run with this exact config, else None.

  A run whose saved config differs (another preset, override or code default)
  is a MixedOutputError: a resumed benchmark never mixes configurations, and
  a finished run is never overwritten. A key the saved config lacks takes
  its default (a field added later, whose default keeps the old behaviour).
  """
  path = os.path.join(run_dir, RUN_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    run = json.load(f)
  if Config.from_saved(run.get("config") or {}) != config:
    raise MixedOutputError(f"{path} was made with another config; use another "
                     "--output_dir (or remove that run folder to redo it)")
  tau_path = os.path.join(run_dir, TAU_FILE)
  taus = None
  if tf.io.gfile.exists(tau_path):
    with tf.io.gfile.GFile(tau_path, "rb") as f:
      with np.load(io.BytesIO(f.read())) as arrays:
        taus = (arrays["tau"], arrays["relatedness"])
  return run, taus


def write_outputs(output_dir: str, results: dict, runs: list[dict],
                  methods: list[str], taus: dict, final: bool) -> str:
  """results.json and results.md (after every run), plots at the end
  (metrics.png, tau.png, reliability.png: plots.py).

  `results` holds the benchmark's settings (with `reference`: every method
  is also paired with that one; with `baseline_dir`: with the same method
  in that output folder); the summary, runs and tables are added here.
  Returns the tables.
  """
  present = [m for m in methods if any(r["method"] == m for r in runs)]
  summary, paired = aggregate(runs), paired_differences(runs)
  paired_valid = paired_differences(runs, "valid")
  tasks = objective_lib.task_names(runs[0]["test"])
  table = tables.markdown_table(summary, present,
                                tables.headline_metrics(tasks)) + "\n\n"
  if paired:
    table += ("Paired differences against the baseline (test split, same "
              "seeds):\n\n" + tables.paired_table(paired) + "\n\n")
  if paired_valid:
    table += ("The same on the validation split (the selected epochs; what "
              "a choice between methods may read):\n\n"
              + tables.paired_table(paired_valid) + "\n\n")
  reference = results.get("reference")
  paired_reference = (paired_differences(runs, reference=reference)
                      if reference else {})
  if paired_reference:
    table += (f"Every method against {reference} (test split, same seeds):"
              "\n\n" + tables.paired_table(paired_reference) + "\n\n")
  baseline_dir = results.get("baseline_dir")
  paired_dir = (paired_differences(runs, baseline_runs=read_runs(baseline_dir))
                if baseline_dir else {})
  if paired_dir:
    table += (f"Every method against the same method in {baseline_dir} "
              "(test split, same seeds):\n\n"
              + tables.paired_table(paired_dir) + "\n\n")
  for key in ("calibrated", "calibrated_platt", "calibrated_isotonic"):
    if any(key in r["test"] for r in runs):
      which = ("train.calibration" if key == "calibrated"
               else key.removeprefix("calibrated_"))
      table += ("Calibration on the test split: the model's probabilities → "
                f"after the calibrators fitted on the validation split "
                f"({which}):\n\n"
                + tables.calibration_table(runs, present, tasks, key)
                + "\n\n")
  curves, text = curves_lib.section(
      functools.partial(quality_plan.run_dir, output_dir), runs, tasks,
      present)
  table += text
  table += tables.markdown_table(summary, present, tables.table_metrics(tasks))
  results = {**results, "complete": final, "summary": summary,
             "paired": paired, "paired_valid": paired_valid,
             "paired_reference": paired_reference,
             "paired_baseline_dir": paired_dir, "learning_curves": curves,
             "runs": runs}
  _write_text(os.path.join(output_dir, "results.json"),
              json.dumps(results, indent=1, sort_keys=True))
  _write_text(os.path.join(output_dir, "results.md"), table + "\n")
  if final:
    plots.metric_bars(summary, methods, os.path.join(output_dir, "metrics.png"))
    if taus:
      plots.tau_plots(taus, os.path.join(output_dir, "tau.png"))
    plots.reliability(runs, methods,
                      os.path.join(output_dir, "reliability.png"))
    plots.reliability(runs, methods, os.path.join(
        output_dir, "reliability_calibrated.png"), part="calibrated")
  return table


def run_benchmark(plan, output_dir: str, data_dir: str | None,
                  settings: dict, log=print) -> str:
  """Trains every run of `plan` not done before; returns the tables."""
  methods = list(dict.fromkeys(method for method, _, _ in plan))
  tf.io.gfile.makedirs(output_dir)
  for method, seed, config in plan:   # refuse a mixed folder before training
    load_run(quality_plan.run_dir(output_dir, method, seed), config)
  runs, taus, start = [], {}, time.time()
  for index, (method, seed, config) in enumerate(plan):
    folder = quality_plan.run_dir(output_dir, method, seed)
    done = load_run(folder, config)
    header = f"[run {index + 1}/{len(plan)}] {method} seed {seed}"
    if done is not None:
      log(f"{header}: done before, read {RUN_FILE}")
      run, pair = done
      if "valid" not in run:
        run["valid"] = saved_valid_report(folder)
      data_dir = data_dir or run.get("data_dir")
    else:
      log(f"{header} ({time.time() - start:.0f}s elapsed)")
      report, collected, data_dir, valid = run_one(
          config, folder, data_dir)
      run = {"method": method, "seed": seed, "test": report, "valid": valid,
             "config": config.to_dict(), "data_dir": os.path.abspath(data_dir)}
      pair = tau_pair(collected)
      save_run(folder, run, pair)
    runs.append(run)
    if pair is not None and method not in taus:
      taus[method] = pair
    results = {**settings, "methods": methods,
               "data_dir": os.path.abspath(data_dir) if data_dir else None,
               "elapsed_s": time.time() - start}
    table = write_outputs(output_dir, results, runs, methods, taus,
                          final=index == len(plan) - 1)
  return table
