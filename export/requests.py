"""Requests in TF Serving's formats, built from real records.

  * gRPC `PredictRequest`s (tensorflow-serving-api protos),
  * the warm-up file `assets.extra/tf_serving_warmup_requests`: a TFRecord of
    `PredictionLog`s, each holding one `PredictRequest`, which TF Serving
    replays when it loads a version (before the version serves traffic),
  * REST JSON bodies for `POST /v1/models/<name>:predict`.

Requests carry only the schema's features: labels and oracle keys of the
source records are dropped.
"""

from __future__ import annotations

import base64
import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from adaftr_tf import features as F
from export import serving

DEFAULT_MODEL_NAME = "adaftr"
# TF Serving reads at most 1000 warm-up records.
MAX_WARMUP_RECORDS = 1000


def feature_examples(serialized: Sequence[bytes],
                     schema: F.FeatureSchema) -> list[bytes]:
  """Re-serialises tf.Examples keeping only the schema's feature keys."""
  keep = set(schema.feature_names)
  out = []
  for record in serialized:
    example = tf.train.Example.FromString(record)
    for key in [k for k in example.features.feature if k not in keep]:
      del example.features.feature[key]
    out.append(example.SerializeToString())
  return out


def parse_features(examples: Sequence[bytes],
                   schema: F.FeatureSchema) -> dict[str, np.ndarray]:
  """Raw feature columns of serialized tf.Examples, as `serving_spec` shapes.

  `[n]` int64 / float32, or `[n, max_len]` for multivalent fields (padded with
  the field default).
  """
  parsed = schema.serving_inputs(
      tf.io.parse_example(tf.constant(list(examples)), schema.feature_spec()))
  return {name: parsed[name].numpy() for name in schema.feature_names}


def predict_request(signature: str, inputs: Mapping[str, np.ndarray],
                    model_name: str = DEFAULT_MODEL_NAME) -> predict_pb2.PredictRequest:
  """A gRPC `PredictRequest` for `signature` with one tensor per input."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def warmup_logs(examples: Sequence[bytes], schema: F.FeatureSchema,
                model_name: str = DEFAULT_MODEL_NAME
                ) -> list[prediction_log_pb2.PredictionLog]:
  """Warm-up requests: one `serving_default` request per example, then one
  request with all examples for each signature (warms the batched path).

  Raises:
    ValueError: no examples, or more requests than TF Serving reads.
  """
  if not examples:
    raise ValueError("warm-up needs at least one example")
  if len(examples) + 2 > MAX_WARMUP_RECORDS:
    raise ValueError(f"{len(examples)} warm-up examples: TF Serving reads at "
                     f"most {MAX_WARMUP_RECORDS} records; use fewer")
  examples = list(examples)
  requests = [predict_request(serving.SIGNATURE_EXAMPLES,
                              {serving.EXAMPLES_INPUT: np.array([e], object)},
                              model_name) for e in examples]
  requests.append(predict_request(serving.SIGNATURE_EXAMPLES,
                                  {serving.EXAMPLES_INPUT: np.array(examples, object)},
                                  model_name))
  requests.append(predict_request(serving.SIGNATURE_FEATURES,
                                  parse_features(examples, schema), model_name))
  return [prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=r)) for r in requests]


def write_warmup(path: str, logs: Sequence[prediction_log_pb2.PredictionLog]) -> int:
  """Writes the warm-up file (a TFRecord of `PredictionLog`s); returns the count."""
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for log in logs:
      writer.write(log.SerializeToString())
  return len(logs)


def read_warmup(path: str) -> list[prediction_log_pb2.PredictionLog]:
  """Parses every record of a warm-up file as a `PredictionLog`.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: a record that is not a PredictLog (naming its index).
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"no warm-up file at {path}")
  logs = []
  for index, record in enumerate(tf.data.TFRecordDataset(path)):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    if log.WhichOneof("log_type") != "predict_log":
      raise ValueError(f"warm-up record {index} of {path} is not a predict_log "
                       f"(got {log.WhichOneof('log_type')})")
    logs.append(log)
  return logs


def request_inputs(request: predict_pb2.PredictRequest
                   ) -> tuple[str, dict[str, np.ndarray]]:
  """(signature name, name -> array) of a `PredictRequest`."""
  signature = request.model_spec.signature_name or serving.SIGNATURE_EXAMPLES
  return signature, {k: tf.make_ndarray(v) for k, v in request.inputs.items()}


def rest_bodies(examples: Sequence[bytes], schema: F.FeatureSchema) -> dict:
  """REST `:predict` bodies for both signatures, on the same examples.

  Returns:
    {signature name: JSON-ready body}: `predict_features` in the row format
    (`instances`: one object of raw feature values per record) and
    `serving_default` with base64 serialized tf.Examples (`{"b64": ...}`).
  """
  columns = parse_features(examples, schema)
  instances = [{name: _json_value(columns[name][i]) for name in schema.feature_names}
               for i in range(len(examples))]
  return {
      serving.SIGNATURE_FEATURES: {"signature_name": serving.SIGNATURE_FEATURES,
                                   "instances": instances},
      serving.SIGNATURE_EXAMPLES: {
          "signature_name": serving.SIGNATURE_EXAMPLES,
          "instances": [{serving.EXAMPLES_INPUT:
                         {"b64": base64.b64encode(e).decode("ascii")}}
                        for e in examples]},
  }


def _json_value(value):
  if isinstance(value, np.integer):
    return int(value)
  # The shortest decimal that reads back as the same float32.
  return float(np.format_float_positional(np.float32(value), unique=True))
