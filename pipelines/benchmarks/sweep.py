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
from adaftr_tf import overrides
from adaftr_tf.config import Config
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
  """Mean of the validation CTR, CVR and CTCVR AUCs."""
  return (valid["ctr_auc"] + valid["cvr_auc"] + valid["ctcvr_auc"]) / 3.0


def markdown(result: dict) -> str:
  """The trials of one sweep as a markdown table, best first."""
  lines = [f"### {result['method']} ({result['budget']} trials, preset "
           f"{result['preset']}, search seed {result['seed']})", "",
           "| rank | valid score | CTR AUC | CVR AUC | CTCVR AUC | overrides |",
           "| ---: | ---: | ---: | ---: | ---: | --- |"]
  ranked = sorted(result["trials"], key=lambda r: -r["score"])
  for rank, trial in enumerate(ranked, start=1):
    v = trial["valid"]
    knobs = " ".join(f"`{o}`" for o in trial["overrides"]) or "(as defined)"
    lines.append(f"| {rank} | {trial['score']:.4f} | {v['ctr_auc']:.4f} | "
                 f"{v['cvr_auc']:.4f} | {v['ctcvr_auc']:.4f} | {knobs} |")
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
    log(f"  valid AUCs ctr {valid['ctr_auc']:.4f} cvr {valid['cvr_auc']:.4f} "
        f"ctcvr {valid['ctcvr_auc']:.4f}")
  result = {"method": method, "preset": preset, "budget": budget,
            "seed": seed, "selection": "mean of validation CTR, CVR, CTCVR AUC",
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
