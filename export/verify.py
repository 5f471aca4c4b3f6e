"""Replays warm-up requests through a loaded SavedModel and compares outputs.

Used before publishing (the export job loads its temporary SavedModel and
replays the warm-up file, as TF Serving will at load time) and by
`python -m export.check`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from adaftr_tf import features as F
from adaftr_tf.layers.calibration import output_calibration
from export import requests
from export import serving

# Largest |SavedModel - in-memory model| accepted on the same records.
TOLERANCE = 1e-5


@dataclasses.dataclass
class Replay:
  """What a replay found.

  Attributes:
    records: warm-up records replayed.
    per_signature: signature name -> records replayed through it.
    max_abs_diff: largest difference to the reference model (None: no reference).
    problems: failed requests, bad outputs, mismatches (empty when all is well).
  """

  records: int = 0
  per_signature: dict = dataclasses.field(default_factory=dict)
  max_abs_diff: float | None = None
  problems: list = dataclasses.field(default_factory=list)


def _features(schema, signature: str, inputs: dict) -> dict:
  """Raw feature columns of a request (parsed when it holds tf.Examples)."""
  if signature == serving.SIGNATURE_EXAMPLES:
    return requests.parse_features(inputs[serving.EXAMPLES_INPUT].reshape(-1),
                                   schema)
  return inputs


def replay(loaded, logs: Sequence, model=None, schema=None,
           tolerance: float = TOLERANCE, calibration=None) -> Replay:
  """Runs every warm-up `PredictionLog` through `loaded`'s signatures.

  Args:
    loaded: `tf.saved_model.load` result.
    logs: `PredictionLog`s (see `requests.read_warmup`).
    model, schema: the in-memory (training checkpoint) model to compare with;
      None skips the comparison.
    calibration: the `Calibration` the export serves (None: uncalibrated).
    tolerance: largest accepted absolute difference.

  Returns:
    A `Replay`; outputs must be finite probabilities in [0, 1] (tau: finite),
    one per record of the request.
  """
  result = Replay()
  answered = []  # (index, signature, outputs, raw features)
  for index, log in enumerate(logs):
    signature, inputs = requests.request_inputs(log.predict_log.request)
    result.records += 1
    result.per_signature[signature] = result.per_signature.get(signature, 0) + 1
    if signature not in loaded.signatures:
      result.problems.append(f"record {index}: signature {signature!r} not in "
                             f"{sorted(loaded.signatures)}")
      continue
    try:
      outputs = loaded.signatures[signature](
          **{k: tf.constant(v) for k, v in inputs.items()})
    except (tf.errors.OpError, TypeError, ValueError) as err:
      result.problems.append(f"record {index} ({signature}): {err}")
      continue
    rows = next(iter(inputs.values())).shape[0]
    outputs = {k: v.numpy() for k, v in outputs.items()}
    result.problems.extend(_bad_outputs(index, outputs, rows))
    if model is not None:
      answered.append((index, signature, outputs,
                       _features(schema, signature, inputs)))
  if not result.records:
    result.problems.append("no warm-up records")
  if model is not None and answered:
    _compare(result, answered, model, schema, tolerance, calibration)
  return result


def _stack_rows(arrays: list, default) -> np.ndarray:
  """Concatenates request columns by row; 2-D (multivalent) ones are first
  right-padded with the field default to a common width."""
  if arrays[0].ndim < 2:
    return np.concatenate([a.reshape(-1) for a in arrays])
  width = max(a.shape[1] for a in arrays)
  return np.concatenate([
      np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=default)
      for a in arrays])


def _compare(result: Replay, answered: list, model, schema,
             tolerance: float, calibration=None) -> None:
  """One in-memory model call on every answered record; max |difference|."""
  names = schema.feature_names
  features = {n: tf.constant(_stack_rows([a[3][n] for a in answered],
                                         schema.serving_defaults[n]))
              for n in names}
  computed = model(features, training=False)
  served = {**model.objective.serving_outputs, F.TAU: F.TAU}  # name -> key
  served = {name: key for name, key in served.items() if key in computed}
  expected = {name: value.numpy() for name, value in serving.served_outputs(
      computed, served, output_calibration(calibration)).items()}
  result.max_abs_diff, start = 0.0, 0
  for index, signature, outputs, raw in answered:
    rows = raw[names[0]].shape[0]
    for key, value in outputs.items():
      diff = float(np.max(np.abs(value - expected[key][start:start + rows]),
                          initial=0.0))
      result.max_abs_diff = max(result.max_abs_diff, diff)
      if not diff <= tolerance:
        result.problems.append(f"record {index} ({signature}): {key} differs "
                               f"from the checkpoint by {diff:.3g} "
                               f"(tolerance {tolerance:g})")
    start += rows


def _bad_outputs(index: int, outputs: dict, rows: int) -> list[str]:
  found = []
  for key, value in outputs.items():
    if value.shape != (rows,):
      found.append(f"record {index}: output {key} has shape {value.shape}, "
                   f"expected ({rows},)")
    elif not np.all(np.isfinite(value)):
      found.append(f"record {index}: output {key} is not finite")
    elif key != F.TAU and not np.all((value >= 0) & (value <= 1)):
      found.append(f"record {index}: output {key} is outside [0, 1]")
  return found
