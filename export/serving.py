"""Serving signatures around a trained model (preprocessing inside the graph).

Signatures:
  serving_default   examples: string [None] serialized tf.Example
                    -> ctr, cvr, ctcvr: float32 [None]  (+ tau if include_tau);
                    for independent tasks one output per task named after
                    its label (e.g. income_50k, never_married), no product;
                    with fitted calibrators (train.calibration) these are
                    the calibrated probabilities and `{name}_raw` the
                    model's own
  predict_features  one raw tensor [None] per feature (int64 ids, float32
                    values; the form of TF Serving's REST `instances`/`inputs`)
                    -> the same outputs
Preprocessing is inside the graph (the model's FeatureEncoder), so clients
send raw values:
  * an unseen categorical id goes to the field's out-of-vocabulary row
    (identity/vocabulary encodings; hashed fields hash every id),
  * a feature missing from a tf.Example takes its schema default (a missing
    categorical id lands in the out-of-vocabulary row, a missing numerical
    value is the schema's `default`); `predict_features` needs every input,
  * a record of the wrong type (e.g. a float_list where an int64 id is
    expected, two values for a single-valued feature, bytes that are not a
    tf.Example) fails that request with InvalidArgumentError naming the
    feature (TF Serving answers it with an error status and keeps serving).
"""

from __future__ import annotations

import adaftr_tf  # noqa: F401
import tensorflow as tf

from adaftr_tf import calibration as calibration_lib
from adaftr_tf import features as F
from adaftr_tf.layers.calibration import OutputCalibration
from adaftr_tf.layers.calibration import output_calibration
from export import versions

EXAMPLES_INPUT = "examples"
SIGNATURE_EXAMPLES = "serving_default"
SIGNATURE_FEATURES = "predict_features"
RAW_SUFFIX = "_raw"


def served_outputs(outputs, serving: dict[str, str],
                   calibrate: OutputCalibration | None) -> dict:
  """What a signature returns from the model's `outputs`: served name ->
  float32 `[batch]` for every `serving` (name -> output key) entry,
  calibrated when `calibrate` is given (then also `{name}_raw`, the model's
  own probability); tau passes through."""
  calibrated = calibrate(outputs) if calibrate is not None else {}
  served = {}
  for name, key in serving.items():
    served[name] = tf.cast(calibrated.get(key, outputs[key]), tf.float32)
    if key in calibrated:
      served[name + RAW_SUFFIX] = tf.cast(outputs[key], tf.float32)
  return served


class ServingModule(tf.Module):
  """Holds the model and exposes the serving signatures."""

  def __init__(self, model, schema: F.FeatureSchema, include_tau: bool = False,
               calibration: calibration_lib.Calibration | None = None):
    super().__init__(name="adaftr_serving")
    self.model = model
    self.calibrate = output_calibration(calibration, name="calibration")
    self._schema = schema
    self._parse_spec = schema.parse_spec(with_labels=False)
    # Served name -> model output key (adaftr_tf/objective.py).
    self._outputs = {**model.objective.serving_outputs,
                     **({F.TAU: F.TAU} if include_tau else {})}
    alignment = getattr(model, "alignment_task", None)
    if include_tau and (alignment is None or alignment.tau_source != "network"):
      raise ValueError("include_tau: this model has no temperature network "
                       "(model.name is not adaftr, contrastive_weight is 0, "
                       "or loss.tau_source is a training-only control)")
    if include_tau and alignment.signal == "transfer_gate":
      raise ValueError("include_tau: the transfer gate's tau is the rank of "
                       "an instance's slope within its batch "
                       "(loss.relatedness_signal=transfer_gate), not a "
                       "per-request output; export without include_tau")

  def _predict(self, features):
    outputs = self.model(features, training=False, factored_inputs=True)
    return {name: tf.identity(value, name=name) for name, value in
            served_outputs(outputs, self._outputs, self.calibrate).items()}

  def _serve_examples(self, examples):
    return self._predict(tf.io.parse_example(examples, self._parse_spec))

  def _serve_features(self, **features):
    # Inputs of different lengths would otherwise broadcast or fail deep in
    # the model; name the offending feature instead.
    first = self._schema.feature_names[0]
    # Rows, not values: a multivalent input is [rows, max_len].
    size = tf.shape(features[first])[0]
    checks = [tf.debugging.assert_equal(
        tf.shape(features[name])[0], size,
        message=f"predict_features: input {name} has a different number of "
                f"values than input {first}; every input needs one value per "
                "record")
              for name in self._schema.feature_names[1:]]
    with tf.control_dependencies(checks):
      return self._predict({k: tf.identity(v) for k, v in features.items()})

  def signatures(self) -> dict:
    examples_fn = tf.function(self._serve_examples).get_concrete_function(
        tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT))
    features_fn = tf.function(self._serve_features).get_concrete_function(
        **self._schema.serving_spec())
    return {SIGNATURE_EXAMPLES: examples_fn, SIGNATURE_FEATURES: features_fn}


def save(model, schema: F.FeatureSchema, path: str, include_tau: bool = False,
         assets: dict[str, str] | None = None,
         calibration: calibration_lib.Calibration | None = None) -> str:
  """Writes a SavedModel at `path` (serving `calibration`'s probabilities
  when given); `assets` (name -> text) go to assets.extra."""
  module = ServingModule(model, schema, include_tau, calibration)
  tf.saved_model.save(module, path, signatures=module.signatures())
  versions.write_extra(path, assets or {})
  return path
