"""Equal-budget hyper-parameter sweep, selected on the validation split only.

Every method gets the same number of trials: the first is the method exactly
as defined (the untuned baseline of the search), the others are drawn at
random (seeded) from its search space (`experiments.sweep_space`); all are
trained through the training job. Trials are ranked by the mean of the
validation CTR, CVR and CTCVR AUCs; the test split is never read.
"""

from __future__ import annotations

import json
import os
import random

import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import objective as objective_lib
from adaftr_tf import overrides
from adaftr_tf.config import Config
from pipelines.benchmarks import tables
from pipelines.training import train_lib


def draw_trials(method: str, budget: int, seed: int) -> list[list[str]]:
  """`budget` distinct override lists: [] (the method as defined), then
  draws uniform over the space."""
  space = experiments.sweep_space(method)
  rng = random.Random(seed)
  trials, seen = [[]], set()
  total = 1
  for values in space.values():
    total *= len(values)
  while len(trials) < min(budget, total + 1):
    choice = tuple(f"{k}={rng.choice(v)}" for k, v in sorted(space.items()))
    if choice not in seen:
      seen.add(choice)
      trials.append(list(choice))
  return trials


def selection_score(valid: dict) -> float:
  """Mean of the validation AUCs of the reported tasks (CTR, CVR, CTCVR for
  the funnel; each label's for independent tasks)."""
  tasks = objective_lib.task_names(valid)
  return sum(valid[f"{t}_auc"] for t in tasks) / len(tasks)


def markdown(result: dict) -> str:
  """The trials of one sweep as a markdown table, best first: each task's
  validation AUC and, when reported, GAUC."""
  tasks = objective_lib.task_names(result["trials"][0]["valid"])
  columns = [f"{t}_{m}" for m in ("auc", "gauc") for t in tasks
             if f"{t}_{m}" in result["trials"][0]["valid"]]
  lines = [f"### {result['method']} ({result['budget']} trials, preset "
           f"{result['preset']}, search seed {result['seed']})", "",
           "| rank | valid score | " + " | ".join(map(tables.metric_title, columns))
           + " | overrides |",
           "| ---: | ---: |" + " ---: |" * len(columns) + " --- |"]
  ranked = sorted(result["trials"], key=lambda r: -r["score"])
  for rank, trial in enumerate(ranked, start=1):
    v = trial["valid"]
    knobs = " ".join(f"`{o}`" for o in trial["overrides"]) or "(as defined)"
    lines.append(f"| {rank} | {trial['score']:.4f} | " + " | ".join(
        f"{v[c]:.4f}" for c in columns) + f" | {knobs} |")
  return "\n".join(lines) + "\n"


def run_sweep(method: str, base: Config, budget: int, seed: int,
              output_dir: str, data_dir: str | None = None,
              log=print, preset: str | None = None) -> dict:
  """Trains the trials of `method` on `base`; writes and returns the result.

  `base` is the preset `preset` (with any overrides); the method is applied
  without its tuned knobs. Writes `output_dir/sweep.json` (every trial and
  the winner) and `output_dir/sweep.md`.
  """
  defined = experiments.method_config(method, base, tuned=False)
  trials = draw_trials(method, budget, seed)
  configs = [overrides.apply(defined, t).validate() for t in trials]
  results = []
  for index, (knobs, config) in enumerate(zip(trials, configs)):
    log(f"[trial {index + 1}/{len(trials)}] "
        f"{' '.join(knobs) or '(the method as defined)'}")
    run_dir = os.path.join(output_dir, "trials", f"trial-{index:03d}")
    trained = train_lib.train(config, run_dir, data_dir, verbose=0,
                              log=lambda _: None)
    data_dir, valid = trained["data_dir"], trained["valid"]
    results.append({"overrides": knobs, "score": selection_score(valid),
                    "valid": valid})
    log("  valid AUCs " + ", ".join(
        f"{t} {valid[t + '_auc']:.4f}" for t in objective_lib.task_names(valid)))
  result = {"method": method, "preset": preset, "budget": budget,
            "seed": seed, "selection": "mean of the tasks' validation AUCs",
            "trials": results,
            "winner": max(results, key=lambda r: r["score"])}
  write(result, output_dir)
  return result


def write(result: dict, output_dir: str) -> None:
  """`sweep.json` and `sweep.md` of a finished sweep."""
  tf.io.gfile.makedirs(output_dir)
  with tf.io.gfile.GFile(os.path.join(output_dir, "sweep.json"), "w") as f:
    json.dump(result, f, indent=1)
  with tf.io.gfile.GFile(os.path.join(output_dir, "sweep.md"), "w") as f:
    f.write(markdown(result))
