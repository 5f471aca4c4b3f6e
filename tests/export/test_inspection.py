"""Tests of export/inspection.py: the latency table."""

from export import inspection


def test_table_formats_benchmark_rows():
  rows = [{"signature": "serving_default", "records": 64, "p50_ms": 1.234,
           "p99_ms": 2.5, "mean_ms": 1.3, "records_per_s": 49230.8}]
  assert inspection.table(rows).splitlines()[-1] == (
      "| serving_default | 64 | 1.23 | 2.50 | 49,231 |")
