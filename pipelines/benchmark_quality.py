"""Quality benchmark: methods x seeds on identical splits, selected on validation.

  python -m pipelines.benchmark_quality --preset=bench --seeds=3 --output_dir=DIR
      [--methods=adaftr,mmoe,...] [--override=key=value ...] [--notuned]

Each method is the preset, then its sweep winner (pipelines/tuned.py, chosen
on validation by pipelines.sweep), then its definition in METHODS.

Every run goes through the same training job (`pipelines.training.train_lib.train`):
same data directory, best epoch chosen on the validation split, then one pass
over the test split. Writes into DIR:
  results.json   every run's test report and the per-method mean/std
  results.md     the headline table (AUCs, CTCVR log loss, relatedness),
                 then every metric (mean ± std over seeds)
  metrics.png    AUC bars with error bars
  tau.png        for AdaFTR runs: distribution of tau and tau vs planted r
  runs/METHOD-seedN/run.json (+ tau.npz)  each finished run, written as it
                 ends; a rerun with the same --output_dir skips the runs
                 whose saved config matches (resume after an interruption)
results.json and results.md are rewritten after every run ("complete": false
until the last).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "bench", "Config preset the methods start from.")
cli.define_integer("seeds", 3, "Seeds per method.")
cli.define_string("output_dir", None, "Where results go.")
cli.define_string("methods", "", "Comma-separated subset of METHODS (default all).")
cli.define_string("data_dir", None, "Data directory (default: per config).")
cli.define_multi_string("override", [], "Config override key=value (all runs).")
cli.define_bool("tuned", True, "Start each method from its sweep winner "
                "(pipelines/tuned.py); --notuned runs the untuned methods.")

# name -> overrides on top of the preset. Baselines, then AdaFTR and its ablations.
METHODS = {
    "single_task": ["model.name=multitask", "model.backbone=single_task"],
    "shared_bottom": ["model.name=multitask", "model.backbone=shared_bottom"],
    "esmm": ["model.name=multitask", "model.backbone=shared_embedding"],
    "mmoe": ["model.name=multitask", "model.backbone=mmoe"],
    "ple": ["model.name=multitask", "model.backbone=ple"],
    "aitm": ["model.name=aitm", "model.backbone=mmoe"],
    "adaftr_fixed_tau": ["model.name=adaftr", "loss.temperature_mode=fixed"],
    "adaftr_global_tau": ["model.name=adaftr", "loss.temperature_mode=global"],
    "adaftr": ["model.name=adaftr", "loss.temperature_mode=instance"],
    "adaftr_gradient_agreement": ["model.name=adaftr",
                                  "loss.relatedness_signal=gradient_agreement"],
    "adaftr_random_negative": ["model.name=adaftr", "loss.negatives=random_one"],
    "adaftr_tower_input": ["model.name=adaftr",
                           "loss.relatedness_input=towers_detached"],
}
TABLE_METRICS = ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_logloss", "cvr_logloss",
                 "ctcvr_logloss", "ctr_ece", "cvr_ece", "ctcvr_ece",
                 "ctr_pred_obs_ratio", "cvr_pred_obs_ratio",
                 "ctcvr_pred_obs_ratio", "tau_mean", "agreement_mean",
                 "spearman_neg_tau_vs_r", "spearman_agreement_vs_r")
ORACLE_METRICS = ("oracle_ctr_auc", "oracle_cvr_auc", "oracle_ctcvr_auc")


def select_methods(names: str) -> list[str]:
  """The METHODS named in a comma list (all when empty); ValueError otherwise."""
  chosen = [n.strip() for n in names.split(",") if n.strip()] or list(METHODS)
  unknown = [n for n in chosen if n not in METHODS]
  if unknown:
    raise ValueError(f"unknown method(s) {unknown}; valid: {sorted(METHODS)}")
  return chosen


def run_one(config, run_dir: str, data_dir: str | None):
  """Trains one config; returns (test report, collected test arrays, data_dir)."""
  from adaftr_tf import evaluation
  from pipelines.data import reader
  from pipelines.training import train_lib
  trained = train_lib.train(config, run_dir, data_dir, verbose=0,
                           log=lambda _: None)
  data_dir = trained["data_dir"]
  collected = evaluation.collect(trained["model"], reader.make_dataset(
      data_dir, "test", trained["schema"], config.train.eval_batch_size,
      training=False, with_oracle=train_lib._has_oracle(data_dir)))
  report = evaluation.report(collected)
  report["best_epoch"] = trained["valid"]["best_epoch"]
  return report, collected, data_dir


def aggregate(runs: list[dict]) -> dict[str, dict[str, float]]:
  """Per method: mean and std (over seeds) of every numeric report key."""
  import numpy as np
  by_method: dict[str, list[dict]] = {}
  for run in runs:
    by_method.setdefault(run["method"], []).append(run["test"])
  summary = {}
  for method, reports in by_method.items():
    keys = [k for k, v in reports[0].items() if isinstance(v, (int, float))]
    summary[method] = {}
    for key in keys:
      values = np.array([r[key] for r in reports], dtype=np.float64)
      summary[method][key] = {"mean": float(np.mean(values)),
                              "std": float(np.std(values)),
                              "n": int(len(values))}
  return summary


# The short table (README): AUCs, CTCVR log loss and the relatedness columns.
HEADLINE_METRICS = ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctcvr_logloss",
                    "cvr_pred_obs_ratio", "tau_mean", "spearman_neg_tau_vs_r",
                    "spearman_agreement_vs_r")


def markdown_table(summary: dict, methods: list[str],
                   metrics: tuple[str, ...] = TABLE_METRICS) -> str:
  """Mean ± std per method of `metrics`; oracle AUCs as a last row when
  present. A metric no method has is left out; a method without it gets —;
  an undefined one (NaN: a Spearman correlation of a constant, e.g. a fixed
  tau) gets `undefined`."""
  columns = [m for m in metrics if any(m in summary[x] for x in methods)]
  lines = ["| method | " + " | ".join(columns) + " |",
           "| --- |" + " --- |" * len(columns)]
  for method in methods:
    cells = []
    for column in columns:
      stat = summary[method].get(column)
      if stat is None:
        cells.append("—")
      elif math.isnan(stat["mean"]):
        cells.append("undefined")
      else:
        cells.append(f"{stat['mean']:.4f} ± {stat['std']:.4f}")
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  first = summary[methods[0]]
  if all(k in first for k in ORACLE_METRICS):
    oracle = {c.replace("oracle_", ""): first[c]["mean"] for c in ORACLE_METRICS}
    lines.append("| oracle (true probabilities) | " + " | ".join(
        f"{oracle[c]:.4f}" if c in oracle else "" for c in columns) + " |")
  return "\n".join(lines)


def main(argv):
  cli.begin_job(argv, required=("output_dir",))
  if FLAGS.seeds < 1:
    raise app.UsageError("--seeds must be >= 1")
  from adaftr_tf import config as config_lib
  from pipelines import tuned
  methods = select_methods(FLAGS.methods)
  base = config_lib.apply_overrides(config_lib.get_preset(FLAGS.preset),
                                    FLAGS.override)
  plan = []
  for method in methods:  # validate every config before the first run
    # The sweep winner first: the method's definition wins over its knobs.
    knobs = tuned.tuned_overrides(method) if FLAGS.tuned else []
    for seed in range(FLAGS.seeds):
      config = config_lib.apply_overrides(
          base, knobs + METHODS[method] + [f"train.seed={base.train.seed + seed}"])
      plan.append((method, seed, config.validate()))
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  try:   # refuse a mixed output folder before the first run
    for method, seed, config in plan:
      load_run(os.path.join(FLAGS.output_dir, "runs", f"{method}-seed{seed}"),
               config)
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  runs, taus, data_dir, start = [], {}, FLAGS.data_dir, time.time()
  for index, (method, seed, config) in enumerate(plan):
    run_dir = os.path.join(FLAGS.output_dir, "runs", f"{method}-seed{seed}")
    done = load_run(run_dir, config)
    if done is not None:
      print(f"[run {index + 1}/{len(plan)}] {method} seed {seed}: done "
            f"before, read {RUN_FILE}", flush=True)
      run, tau_pair = done
      data_dir = data_dir or run.get("data_dir")
    else:
      print(f"[run {index + 1}/{len(plan)}] {method} seed {seed} "
            f"({time.time() - start:.0f}s elapsed)", flush=True)
      report, collected, data_dir = run_one(config, run_dir, data_dir)
      run = {"method": method, "seed": seed, "test": report,
             "config": config.to_dict(), "data_dir": os.path.abspath(data_dir)}
      tau_pair = None
      if "tau" in collected and "_oracle_relatedness" in collected:
        tau_pair = (collected["tau"], collected["_oracle_relatedness"])
      save_run(run_dir, run, tau_pair)
    runs.append(run)
    if tau_pair is not None and method not in taus:
      taus[method] = tau_pair
    write_outputs(runs, methods, taus, data_dir, start, final=False)
  write_outputs(runs, methods, taus, data_dir, start, final=True)


RUN_FILE = "run.json"
TAU_FILE = "tau.npz"


def save_run(run_dir: str, run: dict, tau_pair) -> None:
  """Writes one finished run (report + config) and its tau arrays, atomically."""
  import numpy as np
  os.makedirs(run_dir, exist_ok=True)
  if tau_pair is not None:
    np.savez(os.path.join(run_dir, "tau.tmp.npz"), tau=tau_pair[0],
             relatedness=tau_pair[1])
    os.replace(os.path.join(run_dir, "tau.tmp.npz"),
               os.path.join(run_dir, TAU_FILE))
  tmp = os.path.join(run_dir, RUN_FILE + ".tmp")
  with open(tmp, "w") as f:
    json.dump(run, f, indent=1, sort_keys=True)
  os.replace(tmp, os.path.join(run_dir, RUN_FILE))


def load_run(run_dir: str, config):
  """(run, tau pair or None) of a finished run with this exact config, else None.

  A run whose saved config differs (another preset, override or code default)
  is a ValueError: a resumed benchmark never mixes configurations, and a
  finished run is never overwritten.
  """
  import numpy as np
  path = os.path.join(run_dir, RUN_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    run = json.load(f)
  if run.get("config") != json.loads(json.dumps(config.to_dict())):
    raise ValueError(f"{path} was made with another config; use another "
                     "--output_dir (or remove that run folder to redo it)")
  tau_path = os.path.join(run_dir, TAU_FILE)
  tau_pair = None
  if os.path.exists(tau_path):
    with np.load(tau_path) as arrays:
      tau_pair = (arrays["tau"], arrays["relatedness"])
  return run, tau_pair


def write_outputs(runs, methods, taus, data_dir, start, final: bool) -> None:
  """results.json and results.md (after every run); plots at the end."""
  from pipelines.benchmarks import plots as benchmark_plots
  present = [m for m in methods if any(r["method"] == m for r in runs)]
  summary = aggregate(runs)
  table = (markdown_table(summary, present, HEADLINE_METRICS) + "\n\n"
           + markdown_table(summary, present))
  results = {"preset": FLAGS.preset, "seeds": FLAGS.seeds, "methods": methods,
             "tuned": FLAGS.tuned,
             "complete": final, "overrides": FLAGS.override,
             "data_dir": os.path.abspath(data_dir) if data_dir else None,
             "command": " ".join(["python -m pipelines.benchmark_quality"]
                                 + sys.argv[1:]),
             "summary": summary, "runs": runs,
             "elapsed_s": time.time() - start}
  for name, text in (("results.json", json.dumps(results, indent=1,
                                                 sort_keys=True)),
                     ("results.md", table + "\n")):
    tmp = os.path.join(FLAGS.output_dir, name + ".tmp")
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, os.path.join(FLAGS.output_dir, name))
  if not final:
    return
  benchmark_plots.metric_bars(summary, methods,
                              os.path.join(FLAGS.output_dir, "metrics.png"))
  if taus:
    benchmark_plots.tau_plots(taus, os.path.join(FLAGS.output_dir, "tau.png"))
  print("\n" + table)
  print(f"\nwrote {FLAGS.output_dir}/results.json, results.md, metrics.png"
        + (", tau.png" if taus else ""))


if __name__ == "__main__":
  app.run(main)
