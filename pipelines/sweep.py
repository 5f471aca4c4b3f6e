"""Equal-budget hyper-parameter sweep, selected on the validation split only.

  python -m pipelines.sweep --preset=bench --method=adaftr --budget=8 \
      --output_dir=DIR [--seed=0] [--override=key=value ...]

Every method gets the same number of trials (`--budget`): the first is the
method exactly as defined (the untuned baseline of the search), the others
are drawn at random (seeded) from its search space below plus the knobs all
methods share; all are trained through the same job as the benchmark.
Trials are ranked by the mean of the validation CTR, CVR and CTCVR AUCs; the
test split is never read. Writes DIR/sweep.json (every trial, the winner)
and DIR/sweep.md (the trials, best first), and prints the winner as
`--override` flags, ready for pipelines/tuned.py.
"""

from __future__ import annotations

import json
import os
import random

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "bench", "Config preset the trials start from.")
cli.define_string("method", "adaftr", "A method of benchmark_quality.METHODS.")
cli.define_integer("budget", 8, "Trials for the method.")
cli.define_integer("seed", 0, "Seed of the random search.")
cli.define_string("output_dir", None, "Where sweep.json goes.")
cli.define_string("data_dir", None, "Data directory (default: per config).")
cli.define_multi_string("override", [], "Config override key=value (all trials).")

SHARED_SPACE = {
    "train.learning_rate": ["0.001", "0.002", "0.004"],
    "model.embedding_l2": ["0.0", "1e-6", "1e-5"],
}
# The main knobs of each family; AdaFTR's own: lambda, tau range, what the
# relatedness network reads, projection size, symmetry, representation source.
METHOD_SPACES = {
    "adaftr": {
        "loss.contrastive_weight": ["0.01", "0.03", "0.1", "0.3"],
        "loss.tau_min": ["0.02", "0.05", "0.1"],
        "loss.tau_max": ["0.5", "1.0", "2.0"],
        "loss.relatedness_input": ["embeddings", "towers_detached"],
        "loss.projection_dim": ["8", "16", "32"],
        "loss.symmetric": ["true", "false"],
        "model.tower_units": ["64,32", "64,16", "32,32"],
    },
    "mixture": {
        "model.num_experts": ["2", "4", "8"],
        "model.expert_units": ["128,64", "64,32", "256,64"],
    },
    "bottom": {"model.expert_units": ["128,64", "64,32", "256,64"]},
    "ple": {"model.ple_levels": ["1", "2"],
            "model.ple_shared_experts": ["1", "2"],
            "model.expert_units": ["128,64", "64,32"]},
    "aitm": {"model.aitm_calibration_weight": ["0.1", "0.3", "0.6", "1.0"],
             "model.num_experts": ["2", "4", "8"]},
}
SPACE_OF_METHOD = {"single_task": "bottom", "shared_bottom": "bottom",
                   "esmm": "bottom", "mmoe": "mixture", "ple": "ple",
                   "aitm": "aitm"}


def search_space(method: str) -> dict[str, list[str]]:
  """The method's knobs plus the shared ones (AdaFTR variants: AdaFTR's)."""
  family = SPACE_OF_METHOD.get(method, "adaftr" if method.startswith("adaftr")
                               else None)
  if family is None:
    raise ValueError(f"no search space for method {method!r}; known: "
                     f"{sorted(SPACE_OF_METHOD) + ['adaftr*']}")
  return {**SHARED_SPACE, **METHOD_SPACES[family]}


def draw_trials(method: str, budget: int, seed: int) -> list[list[str]]:
  """`budget` distinct override lists: [] (the method as defined), then
  draws uniform over the space."""
  space = search_space(method)
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


def main(argv):
  cli.begin_job(argv, required=("output_dir",))
  from adaftr_tf import config as config_lib
  from pipelines import benchmark_quality
  from pipelines.training import train_lib
  method_overrides = benchmark_quality.METHODS.get(FLAGS.method)
  if method_overrides is None:
    raise ValueError(f"unknown method {FLAGS.method!r}; valid: "
                     f"{sorted(benchmark_quality.METHODS)}")
  # The method as defined, without the tuned knobs of pipelines.tuned.
  base = config_lib.apply_overrides(config_lib.get_preset(FLAGS.preset),
                                    FLAGS.override + method_overrides)
  if FLAGS.budget < 1:
    raise app.UsageError("--budget must be >= 1")
  trials = draw_trials(FLAGS.method, FLAGS.budget, FLAGS.seed)
  configs = [config_lib.apply_overrides(base, t).validate() for t in trials]
  results, data_dir = [], FLAGS.data_dir
  for index, (overrides, config) in enumerate(zip(trials, configs)):
    print(f"[trial {index + 1}/{len(trials)}] "
          f"{' '.join(overrides) or '(the method as defined)'}", flush=True)
    run_dir = os.path.join(FLAGS.output_dir, "trials", f"trial-{index:03d}")
    trained = train_lib.train(config, run_dir, data_dir, verbose=0,
                             log=lambda _: None)
    data_dir = trained["data_dir"]
    valid = trained["valid"]
    results.append({"overrides": overrides, "score": selection_score(valid),
                    "valid": valid})
    print(f"  valid AUCs ctr {valid['ctr_auc']:.4f} cvr {valid['cvr_auc']:.4f} "
          f"ctcvr {valid['ctcvr_auc']:.4f}", flush=True)
  winner = max(results, key=lambda r: r["score"])
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  result = {"method": FLAGS.method, "preset": FLAGS.preset,
            "budget": FLAGS.budget, "seed": FLAGS.seed,
            "selection": "mean of validation CTR, CVR, CTCVR AUC",
            "trials": results, "winner": winner}
  with open(os.path.join(FLAGS.output_dir, "sweep.json"), "w") as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(FLAGS.output_dir, "sweep.md"), "w") as f:
    f.write(markdown(result))
  print("winner (validation): " + (" ".join(
      f"--override={o}" for o in winner["overrides"])
      or "the method as defined (no overrides)"))


if __name__ == "__main__":
  app.run(main)
