"""Tests of pipelines/benchmarks/speed/memory.py: RSS readings."""

import numpy as np

from pipelines.benchmarks.speed import memory


def test_memory_readings():
  assert memory.peak_rss_mb() >= memory.current_rss_mb() > 0
  block = np.ones(64 << 20, np.uint8)   # 64 MiB, touched
  peak = memory.peak_rss_mb()
  del block
  if memory.reset_peak():
    assert memory.peak_rss_mb() < peak
