"""Tests of export/profiling.py: a serving request's time by stage."""

import pytest

from export import inspection
from export import profiling
from export import requests
from export import versions


@pytest.mark.parametrize("name, stage", [
    ("StatefulPartitionedCall/ParseExample/ParseExampleV2", "parse"),
    ("s/adaftr/feature_encoder/ArgMin", "encoder"),
    ("s/adaftr/field_embedding/embedding_lookup", "embedding"),
    ("s/adaftr/mmoe/experts/Relu_3", "experts"),
    ("s/adaftr/shared_bottom/bottom/dense_0/Relu", "experts"),
    ("s/adaftr/mmoe/gate_1/BiasAdd", "gates"),
    ("s/adaftr/mmoe/Softmax", "gates"),
    ("s/adaftr/heads/ctr_tower/mlp/dense_0/Relu", "towers"),
    ("s/calibration/SelectV2_2", "calibration"),
    ("_retval_StatefulPartitionedCall_1_0_0", "other"),
])
def test_nodes_are_attributed_to_their_stage(name, stage):
  assert profiling.stage_of(name) == stage


def test_a_request_of_the_tiny_export_by_stage(published):
  warmup = versions.extra_path(published, versions.WARMUP_FILE)
  examples = inspection.warmup_examples(requests.read_warmup(warmup))
  result = profiling.profile(published, examples, records=16, runs=3,
                             warmup=1)
  stages = result["stages"]
  assert list(stages) == [s for s, _ in profiling.STAGES] + ["other"]
  for stage in ("parse", "encoder", "embedding", "experts", "gates",
                "towers"):
    assert stages[stage] > 0, stage      # the tiny model is an MMoE AdaFTR
  assert result["op_ms"] == pytest.approx(sum(stages.values()))
  for timing in (result["session"], result["eager"]):
    assert 0 < timing["p50_ms"] <= timing["p99_ms"]
  text = profiling.table(result)
  assert "| experts |" in text and "16 records per request" in text
