"""Paired measurement: several reference steps timed in interleaved rounds.

Rows measured in separate processes at different times see different loads
from other jobs on a shared machine. Here every entry (a config change and/or
prototypes on top of the phase's config) gets its own model and reference
step (pipelines/benchmarks/speed/phases.reference_step) in ONE process; then, for
`rounds` rounds, each entry runs `steps` steps in turn (the order rotates
every round). All entries see the same load, so their ratios to the first
entry are far steadier than those of separate rows. Memory is not separated
(one process): the phase's peak covers all entries.

Spec fields besides the phase's usual ones: "entries": [{"name": str,
"overrides": [...], "prototypes": [...]}, ...] (the first is the baseline),
"rounds": int.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

from adaftr_tf import overrides
from pipelines.benchmarks.speed import phases


def _entry_step(spec, base, schema, entry):
  """The entry's traced reference step and its batch cycle."""
  config = overrides.apply(base, entry.get("overrides", ()))
  step, batches = phases.reference_step(
      config.validate(), schema, spec["data_dir"],
      spec.get("reference_batches", 4), entry.get("prototypes", ()),
      clear_session=False)
  cycle = itertools.cycle(batches)
  for _ in range(spec["warmup"]):
    loss = step(next(cycle))
  float(loss)
  return step, cycle, config.train.batch_size


@dataclasses.dataclass
class _Tally:
  steps: int = 0
  seconds: float = 0.0
  cpu_seconds: float = 0.0
  rounds: list = dataclasses.field(default_factory=list)


def measure_paired(spec, config, schema) -> dict:
  """examples/s (wall and per CPU-s) of every entry and its ratio to entry 0."""
  entries = spec["entries"]
  if not entries:
    raise ValueError("a paired phase needs at least one entry")
  built = [_entry_step(spec, config, schema, e) for e in entries]
  # The first calls of a step after other models were built are slow (seen
  # on CPU): one untimed pass over every entry before the timed rounds.
  for step, cycle, _ in built:
    for _ in range(spec["warmup"]):
      loss = step(next(cycle))
    float(loss)
  tallies = [_Tally() for _ in entries]
  for r in range(spec.get("rounds", 3)):
    order = list(range(len(entries)))
    order = order[r % len(order):] + order[:r % len(order)]
    for i in order:
      step, cycle, batch_size = built[i]
      start, cpu = time.perf_counter(), time.process_time()
      for _ in range(spec["steps"]):
        loss = step(next(cycle))
      float(loss)
      seconds = time.perf_counter() - start
      tally = tallies[i]
      tally.steps += spec["steps"]
      tally.seconds += seconds
      tally.cpu_seconds += time.process_time() - cpu
      tally.rounds.append(batch_size * spec["steps"] / seconds)
  results = {}
  for entry, (_, _, batch_size), tally in zip(entries, built, tallies):
    examples = batch_size * tally.steps
    results[entry["name"]] = {
        "examples_per_s": examples / tally.seconds,
        "examples_per_cpu_s": examples / tally.cpu_seconds,
        "cpu_utilisation": tally.cpu_seconds / tally.seconds,
        "round_examples_per_s": tally.rounds, "timed_steps": tally.steps,
        "overrides": list(entry.get("overrides", ())),
        "prototypes": list(entry.get("prototypes", ()))}
  first = results[entries[0]["name"]]
  for value in results.values():
    value["relative"] = value["examples_per_s"] / first["examples_per_s"]
    value["relative_per_cpu"] = (value["examples_per_cpu_s"]
                                 / first["examples_per_cpu_s"])
  return {"entries": results, "baseline": entries[0]["name"],
          "batch_size": config.train.batch_size,
          "rounds": spec.get("rounds", 3), "steps_per_round": spec["steps"]}
