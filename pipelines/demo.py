"""The main job (`make demo`): synthetic log -> AdaFTR and its backbone ->
test report -> SavedModel of the one validation prefers.

  python -m pipelines.demo [--output_dir=demo_output] [--preset=demo]
                           [--nocompare_backbone]

1. generates the embedded synthetic data (if missing),
2. trains AdaFTR, keeping the best epoch on the validation split, and (for a
   config with the alignment, unless --nocompare_backbone) the same config
   without it (`model.name=multitask`: the backbone alone, same data and
   seed), because the measured answer to "does AdaFTR beat its backbone?"
   is no (README, "Does adaptive relatedness help?"),
3. evaluates on the test split (AUCs beside the oracle AUCs, log losses,
   calibration, tau statistics),
4. exports the model with the better validation checkpoint metric (the
   test split is never read to choose) as a validated SavedModel with
   warm-up requests, reloads it in a fresh process that imports only
   TensorFlow, scores a few test records and compares with the in-memory
   model,
5. prints a results table and writes `<output_dir>/results.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("output_dir", "demo_output", "Where the run is written.")
cli.define_string("preset", "demo", "Config preset.")
cli.define_string("data_dir", None, "Data directory (default: per config).")
cli.define_multi_string("override", [], "Config override key=value.")
cli.define_integer("verbose", 2, "Keras fit verbosity.")
cli.define_bool("compare_backbone", True,
                "Also train the backbone without the alignment and export "
                "whichever validates better.")

NUM_SCORED = 5
MAX_SERVING_DIFF = 1e-5


def score_in_fresh_process(saved_model: str, records: str) -> dict:
  """Scores the first records with `python -m export.score` in a subprocess."""
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  command = [sys.executable, "-m", "export.score", f"--saved_model={saved_model}",
             f"--records={records}", f"--num={NUM_SCORED}"]
  done = subprocess.run(command, capture_output=True, text=True, env=env,
                        check=False, timeout=300)
  if done.returncode != 0:
    raise RuntimeError(f"scoring the SavedModel in a fresh process failed:\n"
                       f"{done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def in_memory_scores(model, schema, records: str, calibration) -> dict:
  """What the export serves for the first records, computed in memory (the
  model's outputs through its fitted `calibration`)."""
  import numpy as np
  import tensorflow as tf
  from adaftr_tf.layers.calibration import output_calibration
  from export import serving
  examples = tf.constant([r.numpy() for r in
                          tf.data.TFRecordDataset(records).take(NUM_SCORED)])
  parsed = tf.io.parse_example(examples, schema.parse_spec(with_labels=False))
  served = serving.served_outputs(model(parsed, training=False),
                                  model.objective.serving_outputs,
                                  output_calibration(calibration))
  return {name: np.asarray(value).tolist() for name, value in served.items()}


def results_table(test: dict, serving: dict, timings: dict,
                  objective=None) -> str:
  """The demo's printed table of the test `report` (`objective`: what it
  reports, default the funnel), GAUC beside AUC (— without a group field)."""
  from adaftr_tf import features as F
  from adaftr_tf import objective as objective_lib
  objective = objective or objective_lib.FUNNEL_OBJECTIVE
  funnel = objective.kind == F.FUNNEL
  rows = [("task", "AUC", "GAUC", "oracle AUC", "log loss", "ECE",
           "pred/obs ± s.e.", "calibrated pred/obs, ECE")]
  calibrated = test.get("calibrated") or {}
  after = lambda task: (f"{calibrated[f'{task}_pred_obs_ratio']:.3f}, "
                        f"{calibrated[f'{task}_ece']:.4f}"
                        if f"{task}_pred_obs_ratio" in calibrated else "—")
  gauc = lambda task: (f"{test[f'{task}_gauc']:.4f}"
                       if f"{task}_gauc" in test else "—")
  for reported in objective.reported:
    task = reported.name
    scope = ("all rows" if not funnel else "clicked only"
             if reported.clicked_only else "all impressions")
    title = task.upper() if funnel else task
    rows.append((f"{title} ({scope})", f"{test[f'{task}_auc']:.4f}",
                 gauc(task),
                 f"{test.get(f'oracle_{task}_auc', float('nan')):.4f}",
                 f"{test[f'{task}_logloss']:.4f}", f"{test[f'{task}_ece']:.4f}",
                 f"{test[f'{task}_pred_obs_ratio']:.3f} ± "
                 f"{test[f'{task}_pred_obs_ratio_se']:.3f}", after(task)))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  if "group_field" in test:
    left_out = lambda t, n: f"{t} {n} of {n + test[f'{t}_gauc_groups']}"
    lines.append(f"GAUC: AUC per value of {test['group_field']}, weighted by "
                 "rows; single-class groups left out: " + ", ".join(
                     left_out(r.name, test[f"{r.name}_gauc_excluded"])
                     for r in objective.reported))
  if "tau_mean" in test:
    lines.append(f"tau: mean {test['tau_mean']:.3f}, p5 {test['tau_p5']:.3f}, "
                 f"p50 {test['tau_p50']:.3f}, p95 {test['tau_p95']:.3f}; "
                 f"Spearman(-tau, planted r) "
                 f"{test.get('spearman_neg_tau_vs_r', float('nan')):.3f}")
  rates = (("click", "conversion") if funnel else
           tuple(r.name for r in objective.reported))
  lines.append(f"test {'impressions' if funnel else 'rows'} "
               f"{test['num_examples']}, " + ", ".join(
                   f"{name} rate {test[f'{name}_rate']:.4f}" for name in rates))
  lines.append(f"SavedModel {serving['path']}: reloaded in a fresh process, "
               f"{serving['num_scored']} records, max |diff| vs in-memory "
               f"{serving['max_abs_diff']:.2e}")
  lines.append("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
  return "\n".join(lines)


def backbone_of(config):
  """The same config without the alignment (the backbone alone), or None
  when `config` has no alignment to compare."""
  from adaftr_tf import overrides
  if not config.uses_alignment:
    return None
  return overrides.apply(config, ["model.name=multitask"]).validate()


def validation_choice(candidates: dict, metric: str) -> str:
  """The candidate name whose validation report is best on the checkpoint
  `metric` (`val_<key>`); ties keep the first."""
  key = metric.removeprefix("val_")
  return max(candidates, key=lambda name: candidates[name]["valid"][key])


def comparison_table(candidates: dict, chosen: str, metric: str,
                     objective=None) -> str:
  """Validation and test AUCs and GAUCs of each candidate and the export
  choice (`objective`'s reported tasks, default the funnel's)."""
  from adaftr_tf import objective as objective_lib
  objective = objective or objective_lib.FUNNEL_OBJECTIVE
  compared = [f"{r.name}_{m}" for m in ("auc", "gauc")
              for r in objective.reported]
  key = metric.removeprefix("val_")
  rows = [("model", f"valid {key}", *(f"test {k}" for k in compared))]
  for name, c in candidates.items():
    rows.append((name, f"{c['valid'][key]:.4f}",
                 *(f"{c['test'][k]:.4f}" if k in c["test"] else "—"
                   for k in compared)))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  lines.append(f"exported: {chosen} (the higher validation {key}). One seed "
               "on these splits: CVR AUC differences under ~0.02 are noise; "
               "the paired multi-seed answer is in README.md, \"Does "
               "adaptive relatedness help?\"")
  return "\n".join(lines)


def _train_and_test(config, model_dir: str, data_dir, verbose: int) -> dict:
  """Trains `config` into `model_dir` and evaluates it on the test split."""
  from pipelines.training import train_lib
  start = time.time()
  trained = train_lib.train(config, model_dir, data_dir, verbose=verbose)
  trained["train_s"] = time.time() - start
  start = time.time()
  trained["test"], _ = train_lib.split_report(trained, config)
  trained["test_s"] = time.time() - start
  trained["model_dir"] = model_dir
  return trained


def run_demo(config, output_dir: str, data_dir: str | None,
             verbose: int, compare_backbone: bool = True) -> dict:
  """Steps 1-4 of the module docstring; returns the results dict."""
  import numpy as np
  from export import exporter
  from pipelines.data import layout
  timings = {}
  trained = _train_and_test(config, os.path.join(output_dir, "model"),
                            data_dir, verbose)
  data_dir = trained["data_dir"]
  candidates = {config.model.name: trained}
  backbone = backbone_of(config) if compare_backbone else None
  if backbone is not None:
    candidates[f"{backbone.model.name} (backbone alone)"] = _train_and_test(
        backbone, os.path.join(output_dir, "backbone"), data_dir, verbose)
  timings["data+train"] = sum(c["train_s"] for c in candidates.values())
  timings["test evaluation"] = sum(c["test_s"] for c in candidates.values())
  objective = trained["model"].objective
  metric = objective.checkpoint_metric(config.train.checkpoint_metric)
  chosen = validation_choice(candidates, metric)
  model, schema = candidates[chosen]["model"], candidates[chosen]["schema"]
  start = time.time()
  # Validated against the validation split, with warm-up requests.
  path = exporter.export(candidates[chosen]["model_dir"],
                         os.path.join(output_dir, "export"),
                         data_dir=data_dir)
  # Per-row Examples, as a serving client sends (the data may be row blocks).
  shard = layout.write_split_examples(
      data_dir, "test", os.path.join(output_dir, "scored.tfrecord"),
      NUM_SCORED)
  reloaded = score_in_fresh_process(path, shard)
  expected = in_memory_scores(model, schema, shard,
                              candidates[chosen]["calibration"])
  diff = max(float(np.max(np.abs(np.subtract(reloaded["outputs"][k], v))))
             for k, v in expected.items())
  timings["export+reload"] = time.time() - start
  if diff > MAX_SERVING_DIFF:
    raise RuntimeError(f"the reloaded SavedModel differs from the in-memory "
                       f"model by {diff:.3g} (> {MAX_SERVING_DIFF})")
  serving = {"path": os.path.abspath(path), "num_scored": reloaded["num"],
             "max_abs_diff": diff, "scores": reloaded["outputs"]}
  results = {"preset": FLAGS.preset if FLAGS.is_parsed() else None,
             "config": config.to_dict(), "data_dir": os.path.abspath(data_dir),
             "valid": trained["valid"], "test": trained["test"],
             "serving": serving, "timings_s": timings, "exported": chosen,
             "objective": {"kind": objective.kind,
                           "labels": list(objective.labels)},
             "candidates": {name: {"valid": c["valid"], "test": c["test"],
                                   "model_dir": os.path.abspath(c["model_dir"])}
                            for name, c in candidates.items()}}
  if len(candidates) > 1:
    results["comparison"] = comparison_table(candidates, chosen, metric,
                                             objective)
  return results


def main(argv):
  from adaftr_tf import objective as objective_lib
  cli.begin_job(argv)
  config = cli.config_from_flags(FLAGS.preset, FLAGS.override)
  results = run_demo(config, FLAGS.output_dir, FLAGS.data_dir, FLAGS.verbose,
                     FLAGS.compare_backbone)
  path = os.path.join(FLAGS.output_dir, "results.json")
  with open(path, "w") as f:
    json.dump(results, f, indent=1, sort_keys=True, default=float)
  print(f"\nmodel.name={config.model.name}, model.backbone="
        f"{config.model.backbone}, test split:")
  print(results_table(results["test"], results["serving"],
                      results["timings_s"], objective_lib.Objective(
                          results["objective"]["kind"],
                          tuple(results["objective"]["labels"]))))
  if "comparison" in results:
    print("\n" + results["comparison"])
  print(f"\nresults written to {os.path.abspath(path)}")


def run():
  """Console script `adaftr-demo`."""
  cli.run(main)


if __name__ == "__main__":
  run()
