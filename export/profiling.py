"""Where a `serving_default` request spends its time, by stage.

`profile(path, examples, records, runs)` loads the SavedModel into a graph
session (the form TF Serving runs it in) and runs one request of `records`
serialized tf.Examples `runs` times with full tracing. Every op's time is
attributed to the first stage whose name its node path contains
(`STAGES`, checked in order), else to `other`:

  parse        ParseExample: the request's tf.Examples -> feature tensors
  encoder      vocabulary lookups, numerical normalisation, non-finite check
  embedding    the embedding gather and the field concatenation
  towers       task towers and logits (and the AITM transfer)
  experts      the shared experts (MMoE / PLE / shared-bottom MLP)
  gates        MMoE / PLE gates: their matmuls, softmax and mixture
  calibration  the served calibrators
  other        the rest (variable reads, identities, function plumbing)

Besides the per-stage op time (ms per request, summed over ops: ops that
run in parallel both count), it measures the request's wall time through
`Session.run` and through the eager signature call of `tf.saved_model.load`
(what `export.check --benchmark` times); their difference is the Python
binding of the eager call.
"""

from __future__ import annotations

import collections
import time
from typing import Sequence

import numpy as np
import tensorflow as tf

from export import inspection
from export import serving

STAGES = (("parse", ("ParseExample",)),
          ("encoder", ("feature_encoder",)),
          ("embedding", ("field_embedding",)),
          ("towers", ("heads/", "tower", "/logit", "transfer")),
          ("experts", ("/experts", "/bottom")),
          ("gates", ("gate", "/mmoe/", "/ple/")),
          ("calibration", ("calibration",)))
OTHER = "other"


def stage_of(node_name: str) -> str:
  """The stage (see the module docstring) of a graph node's name."""
  for stage, markers in STAGES:
    if any(marker in node_name for marker in markers):
      return stage
  return OTHER


def _percentiles(seconds: Sequence[float]) -> dict:
  ms = np.asarray(seconds) * 1e3
  return {"p50_ms": float(np.percentile(ms, 50)),
          "p99_ms": float(np.percentile(ms, 99))}


def profile(path: str, examples: Sequence[bytes], records: int = 512,
            runs: int = 50, warmup: int = 5) -> dict:
  """Per-stage time of a `serving_default` request of `records` records.

  Args:
    path: a SavedModel directory.
    examples: serialized tf.Examples; the request cycles through them.
    records, runs, warmup: request size, traced runs, untimed runs first.

  Returns:
    {"records", "runs", "stages": {stage: ms per request}, "op_ms" (their
    sum), "session": {p50_ms, p99_ms} (untraced Session.run), "eager":
    {p50_ms, p99_ms} (the loaded signature called from Python)}.
  """
  batch = np.array([examples[i % len(examples)] for i in range(records)],
                   dtype=object)
  tf1 = tf.compat.v1
  graph = tf.Graph()
  with graph.as_default(), tf1.Session(graph=graph) as session:
    meta = tf1.saved_model.load(session, ["serve"], path)
    signature = meta.signature_def[serving.SIGNATURE_EXAMPLES]
    feed = {signature.inputs[serving.EXAMPLES_INPUT].name: batch}
    fetches = {k: v.name for k, v in signature.outputs.items()}
    for _ in range(warmup):
      session.run(fetches, feed)
    walls = []
    for _ in range(runs):
      start = time.perf_counter()
      session.run(fetches, feed)
      walls.append(time.perf_counter() - start)
    stages = collections.Counter()
    options = tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE)
    for _ in range(runs):
      metadata = tf1.RunMetadata()
      session.run(fetches, feed, options=options, run_metadata=metadata)
      for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
          stages[stage_of(node.node_name)] += node.all_end_rel_micros
  eager = inspection.benchmark(
      tf.saved_model.load(path), inspection.load_schema(path), examples,
      sizes=(records,), iters=runs, warmup=warmup)[0]   # serving_default
  per_request = {stage: stages[stage] / runs / 1e3
                 for stage in (*(s for s, _ in STAGES), OTHER)}
  return {"records": records, "runs": runs, "stages": per_request,
          "op_ms": float(sum(per_request.values())),
          "session": _percentiles(walls),
          "eager": {k: eager[k] for k in ("p50_ms", "p99_ms")}}


def table(result: dict) -> str:
  """A Markdown table of `profile`'s result."""
  total = result["op_ms"] or 1.0
  lines = [f"serving_default, {result['records']} records per request, "
           f"{result['runs']} traced runs:", "",
           "| stage | op ms per request | share |", "| --- | ---: | ---: |"]
  for stage, ms in result["stages"].items():
    lines.append(f"| {stage} | {ms:.3f} | {ms / total:.0%} |")
  lines += ["", f"Session.run p50 {result['session']['p50_ms']:.2f} ms, p99 "
            f"{result['session']['p99_ms']:.2f} ms; eager signature call p50 "
            f"{result['eager']['p50_ms']:.2f} ms, p99 "
            f"{result['eager']['p99_ms']:.2f} ms"]
  return "\n".join(lines)
