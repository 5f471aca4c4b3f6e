"""Runs the rows of a speed benchmark: data, one process per row, machine.

What `python -m pipelines.benchmark_speed` does between parsing its flags and
printing the table (plan.py lists the rows, report.py sums them up).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import tensorflow as tf

import pipelines
from pipelines.benchmarks.speed import phases
from pipelines.benchmarks.speed import plan as plan_lib
from pipelines.data import layout as layout_lib
from pipelines.data import synthetic

# The folder holding the `pipelines` package: the workers' import root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pipelines.__file__)))


def prepare_data(config, root, data_rows, vocab_rows, scale_data_rows, log):
  """({layout: main data dir}, {total rows: data dir}), generated when
  missing: the main data in both record layouts (per-row records and row
  blocks of `data.block_rows`), the scale data in `data.layout`."""
  base = config.data.synthetic
  held_out = min(2048, data_rows)   # valid/test are never read here
  main = dataclasses.replace(base, num_train=data_rows, num_valid=held_out,
                             num_test=held_out)
  default = layout_lib.from_config(config.data)
  wanted = {name: (main, layout_lib.Layout(name, default.block_rows))
            for name in plan_lib.LAYOUT_ROWS}
  if vocab_rows and base.num_categorical < 1:
    raise ValueError("--vocab_rows needs categorical fields; the preset's "
                     "data has none (pass --vocab_rows='')")
  for total in vocab_rows:
    # Each field has vocab_size ids plus its OOV row.
    vocab = max(1, total // base.num_categorical - 1)
    wanted[total] = (dataclasses.replace(main, vocab_size=vocab,
                                         num_train=scale_data_rows), default)
  dirs = {}
  for key, (synthetic_config, layout) in wanted.items():
    digest = layout_lib.folder_digest(dataclasses.asdict(synthetic_config),
                                      layout)
    path = os.path.join(root, "speed-" + digest)
    start = time.time()
    synthetic.ensure_synthetic_dataset(synthetic_config, path,
                                       log=lambda _: None, layout=layout)
    log(f"data {key if isinstance(key, str) else f'{key} table rows'}: "
        f"{path} ({layout_lib.load(path).describe()}, "
        f"{time.time() - start:.0f}s)")
    dirs[key] = path
  return {name: dirs.pop(name) for name in plan_lib.LAYOUT_ROWS}, dirs


def _run_subprocess(spec, workdir, timeout):
  spec_path = os.path.join(workdir, "spec.json")
  out_path = os.path.join(workdir, "result.json")
  if os.path.exists(out_path):
    os.remove(out_path)
  with open(spec_path, "w") as f:
    json.dump(spec, f)
  env = {**os.environ, "TF_USE_LEGACY_KERAS": "1",
         "PYTHONPATH": os.pathsep.join(
             p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  proc = subprocess.run(
      [sys.executable, "-m", "pipelines.benchmarks.speed.worker", spec_path, out_path],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
  if proc.returncode != 0 or not os.path.exists(out_path):
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"worker exited with {proc.returncode}: "
                       + " | ".join(tail))
  with open(out_path) as f:
    return json.load(f)


def _run_row(row, isolation, workdir, timeout) -> dict:
  """One measurement of a row: its figures, or {"error": ...}."""
  try:
    if isolation == "subprocess":
      return _run_subprocess(row.spec, workdir, timeout)
    return phases.run_phase(row.spec)
  except Exception as err:  # pylint: disable=broad-except
    return {"error": f"{type(err).__name__}: {err}"}


def _best(runs: list[dict]) -> dict:
  """The fastest successful run of a row, with `peak_rss_mb` the median
  peak of its successful runs (every run's speed and peak kept beside it).

  Speed takes the fastest run: other jobs' load only ever slows a run
  down. The peak resident memory does not depend on load but moves by
  +-30 MiB between identical runs (allocation timing across threads), so
  the median is the figure compared; `fastest_peak_rss_mb` is the fastest
  run's own.
  """
  ok = [r for r in runs if not r.get("error")]
  best = dict(max(ok, key=lambda r: r.get("examples_per_s") or 0) if ok
              else runs[-1])
  best.setdefault("error", None)
  best["repeats_examples_per_s"] = [r.get("examples_per_s") for r in runs]
  best["repeats_peak_rss_mb"] = [r.get("peak_rss_mb") for r in runs]
  peaks = [r["peak_rss_mb"] for r in ok if r.get("peak_rss_mb") is not None]
  if peaks:
    best["fastest_peak_rss_mb"] = best.get("peak_rss_mb")
    best["peak_rss_mb"] = statistics.median(peaks)
  return best


def run_rows(rows, isolation, workdir, timeout, log, repeats=1,
             memory_repeats=1):
  """Runs every row in order; a failure is recorded, not raised.

  Core rows run `max(repeats, memory_repeats)` times, in interleaved
  rounds (all core rows, then all again): each keeps its fastest run's
  speed and its runs' median peak memory (`_best`).
  """
  rounds = max(repeats, memory_repeats)
  schedule = [row for row in rows if row.group == "core"] * (rounds - 1)
  schedule = list(rows) + schedule
  runs: dict[str, list[dict]] = {}
  for index, row in enumerate(schedule):
    start = time.time()
    run = _run_row(row, isolation, workdir, timeout)
    runs.setdefault(row.key, []).append(run)
    speed = run.get("examples_per_s")
    log(f"[{index + 1}/{len(schedule)}] {row.key}: " + (
        run["error"] if run.get("error") else
        (f"{speed:,.0f} examples/s, " if speed else "")
        + f"peak {run['peak_rss_mb']:,.0f} MiB")
        + f" ({time.time() - start:.0f}s)")
  return {row.key: {"group": row.group, "description": row.description,
                    "spec": row.spec, **_best(runs[row.key])}
          for row in rows}


def machine() -> dict:
  """The machine the figures come from (CPU, load, versions)."""
  model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f
               if line.startswith("model name")]
    model = names[0] if names else model
  except OSError:
    pass
  return {"cpu_count": os.cpu_count(), "cpu_model": model,
          "platform": platform.platform(), "python": platform.python_version(),
          "tensorflow": tf.__version__,
          "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
          "load_average_start": list(os.getloadavg()),
          "date": datetime.datetime.now().isoformat(timespec="seconds")}
