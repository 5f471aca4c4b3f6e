"""What the quality benchmark runs: the selected methods (with their
teachers first) and each run's seed, config and folder."""

from __future__ import annotations

import os
from typing import Sequence

from adaftr_tf import experiments
from adaftr_tf.config import Config


def select_methods(names: str) -> list[str]:
  """The registry methods named in a comma list, `@group` for a group of
  them (experiments.group_names); the `core` group when empty. A method
  with teachers (Method.teachers) brings them in, just before itself."""
  chosen = []
  for name in (n.strip() for n in names.split(",")):
    if name.startswith("@"):
      chosen += experiments.group_members(name[1:])
    elif name:
      experiments.get_method(name)   # ConfigError lists the valid ones
      chosen.append(name)
  with_teachers = []
  for name in chosen or experiments.group_members("core"):
    with_teachers += [*experiments.get_method(name).teachers, name]
  return list(dict.fromkeys(with_teachers))


def run_dir(output_dir: str, method: str, seed: int) -> str:
  """The folder of one run (its model dir and run.json)."""
  return os.path.join(output_dir, "runs", f"{method}-seed{seed}")


def plan_runs(base: Config, methods: Sequence[str], seeds: int,
              output_dir: str, tuned: bool = True
              ) -> list[tuple[str, int, Config]]:
  """(method, seed index, validated config) of every run, in order.

  Seed index k trains with `train.seed = base.train.seed + k`. A method's
  teachers (listed before it) are its seed's runs (`loss.teacher_dir`; an
  ensemble over Method.teacher_seeds: seeds k, k+1, ... modulo `seeds`).
  """
  plan = []
  for method in methods:
    config = experiments.method_config(method, base, tuned=tuned)
    registered = experiments.get_method(method)
    teachers, ensemble = registered.teachers, registered.teacher_seeds
    for teacher in sorted(set(teachers) - set(methods[:methods.index(method)])):
      raise ValueError(f"method {method} needs its teacher {teacher} "
                       "benchmarked before it (select_methods adds it)")
    if ensemble > seeds:
      raise ValueError(f"method {method} reads its teachers' runs of "
                       f"{ensemble} seeds: run at least --seeds={ensemble}")
    for seed in range(seeds):
      folders = [os.path.abspath(run_dir(output_dir, t, (seed + j) % seeds))
                 for j in range(ensemble) for t in teachers]
      seeded = experiments.replace_fields(
          config, train={"seed": base.train.seed + seed},
          loss={"teacher_dir": ",".join(folders)} if teachers else {})
      plan.append((method, seed, seeded.validate()))
  return plan
