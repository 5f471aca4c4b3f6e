"""The sweep winners: knobs each quality-benchmark method starts from.

Each entry is the winning trial of an equal-budget `pipelines.sweep` on the
`bench` preset, selected on the validation split (mean of the CTR, CVR and
CTCVR AUCs); the test split was never read. Trial 1 of every sweep is the
method as defined, so a method whose untuned definition won keeps [].
The AdaFTR ablations (adaftr_*) start from AdaFTR's winner, then their own
definition (what they ablate) is applied on top.

The trials and scores behind each entry: docs/results/sweep.md.
"""

from __future__ import annotations

SWEEP_COMMAND = ("python -m pipelines.sweep --preset=bench --method=METHOD "
                 "--budget=4 --seed=0 --output_dir=DIR/METHOD")

# method (or "adaftr" for every adaftr_* variant) -> winning overrides.
TUNED: dict[str, list[str]] = {}


def tuned_overrides(method: str) -> list[str]:
  """The winning overrides of `method`'s sweep ([] when none was run)."""
  key = "adaftr" if method.startswith("adaftr") else method
  return list(TUNED.get(key, []))
