"""Runs one speed phase in this (fresh) process: separate memory peaks.

  python -m pipelines.benchmarks.speed.worker SPEC.json RESULT.json

SPEC.json holds a phase spec (pipelines/benchmarks/speed/phases.py); the result dict is
written to RESULT.json. Started by pipelines.benchmark_speed, one process per
measurement, so each peak resident memory belongs to one phase alone.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv) -> int:
  if len(argv) != 3:
    print(f"usage: python -m pipelines.benchmarks.speed.worker SPEC.json RESULT.json "
          f"(got {argv[1:]})", file=sys.stderr)
    return 2
  with open(argv[1]) as f:
    spec = json.load(f)
  from pipelines.benchmarks.speed import phases  # after the environment is set
  result = phases.run_phase(spec)
  tmp = argv[2] + ".tmp"
  with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
  os.replace(tmp, argv[2])
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
