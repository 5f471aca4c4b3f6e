"""Hypothesis settings and reference helpers of the fuzz tests."""

from hypothesis import HealthCheck, settings


FUZZ = settings(max_examples=40, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


def split_cells(line: bytes):
  """The comma-separated cells of a line, 'blank', or None (not UTF-8)."""
  try:
    text = line.decode("utf-8")
  except UnicodeDecodeError:
    return None
  return text.split(",") if text.strip() else "blank"
