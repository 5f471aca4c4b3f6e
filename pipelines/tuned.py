"""The sweep winners: knobs each quality-benchmark method starts from.

Each entry is the winning trial of an equal-budget `pipelines.sweep` on the
`bench` preset, selected on the validation split (mean of the CTR, CVR and
CTCVR AUCs); the test split was never read. Trial 1 of every sweep is the
method as defined, so a method whose untuned definition won keeps [].
The AdaFTR ablations (adaftr_*) start from AdaFTR's winner, then their own
definition (what they ablate) is applied on top.

The trials and scores behind each entry, and the command
(`python -m pipelines.sweep --preset=bench --method=METHOD --budget=4
--seed=0 --output_dir=DIR/METHOD`): docs/results/sweep.md.
"""

from __future__ import annotations

# method (or "adaftr" for every adaftr_* variant) -> winning overrides.
TUNED: dict[str, list[str]] = {
    "single_task": [
        "model.embedding_l2=1e-6",
        "model.expert_units=64,32",
        "train.learning_rate=0.001"],
    "shared_bottom": [],   # the method as defined won
    "esmm": [],   # the method as defined won
    "mmoe": [
        "model.embedding_l2=1e-5",
        "model.expert_units=64,32",
        "model.num_experts=4",
        "train.learning_rate=0.002"],
    "ple": [
        "model.embedding_l2=1e-5",
        "model.expert_units=128,64",
        "model.ple_levels=1",
        "model.ple_shared_experts=2",
        "train.learning_rate=0.001"],
    "aitm": [],   # the method as defined won
    "adaftr": [
        "loss.contrastive_weight=0.1",
        "loss.projection_dim=32",
        "loss.relatedness_input=embeddings",
        "loss.symmetric=true",
        "loss.tau_max=1.0",
        "loss.tau_min=0.02",
        "model.embedding_l2=0.0",
        "model.tower_units=32,32",
        "train.learning_rate=0.002"],
}


def tuned_overrides(method: str) -> list[str]:
  """The winning overrides of `method`'s sweep ([] when none was run)."""
  key = "adaftr" if method.startswith("adaftr") else method
  return list(TUNED.get(key, []))
