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

An entry whose `loss.teacher_dir` is a key of `plan.UNTRAINED_TEACHERS`
reads its tau from the teachers of the registry's student
`adaftr_B_<student>` on the config's backbone B (the gate teacher; the two
cross-fitted fold teachers), written with their initial weights into a
temporary directory and attached as training attaches trained ones: the
cost of a forward pass does not depend on the weights.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
import time

import tensorflow as tf

from adaftr_tf import experiments
from adaftr_tf import models
from adaftr_tf import overrides
from adaftr_tf.config import Config
from adaftr_tf.experiments import relatedness
from pipelines.benchmarks.speed import phases
from pipelines.benchmarks.speed import plan as plan_lib
from pipelines.training import model_dir as model_dir_lib


def write_untrained_teachers(config: Config, schema, directory: str) -> str:
  """Writes under `directory` one model dir (config, schema, best weights,
  initial) per teacher of the registry's student that `config`'s
  `loss.teacher_dir` names (plan.UNTRAINED_TEACHERS) on `config`'s backbone;
  returns the `loss.teacher_dir` value that lists them in fold order."""
  backbones = {layer: name for name, layer in relatedness.BACKBONES.items()}
  if config.model.backbone not in backbones:
    raise ValueError(f"{config.loss.teacher_dir}: no gate teacher is "
                     f"registered for model.backbone={config.model.backbone} "
                     f"(valid: {sorted(backbones)})")
  student = experiments.get_method(
      f"adaftr_{backbones[config.model.backbone]}_"
      f"{plan_lib.UNTRAINED_TEACHERS[config.loss.teacher_dir]}")
  base = overrides.apply(config, ["loss.tau_source=network",
                                  "loss.teacher_dir=",
                                  "loss.teacher_field_share=0"])
  written = []
  for fold, name in enumerate(student.teachers):
    teacher = experiments.method_config(name, base, tuned=False)
    model = models.build_model(teacher, schema)
    model(schema.default_features(), training=False)   # creates the variables
    teacher_dir = os.path.join(directory, f"teacher{fold}")
    model.save_weights(os.path.join(teacher_dir, model_dir_lib.BEST_WEIGHTS))
    with tf.io.gfile.GFile(
        os.path.join(teacher_dir, model_dir_lib.CONFIG_FILE), "w") as f:
      f.write(teacher.to_json())
    schema.save(teacher_dir)
    written.append(teacher_dir)
  return ",".join(written)


def _entry_step(spec, base, schema, entry):
  """The entry's traced reference step and its batch cycle."""
  config = overrides.apply(base, entry.get("overrides", ()))
  with tempfile.TemporaryDirectory(prefix="teacher_") as teacher_dir:
    if config.loss.teacher_dir in plan_lib.UNTRAINED_TEACHERS:
      written = write_untrained_teachers(config, schema, teacher_dir)
      config = overrides.apply(config, [f"loss.teacher_dir={written}"])
    step, batches = phases.reference_step(   # attaches the teacher
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
