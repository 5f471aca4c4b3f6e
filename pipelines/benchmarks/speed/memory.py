"""Resident memory of the current process, from /proc/self/status (Linux).

`VmHWM` is the peak resident set size; writing "5" to /proc/self/clear_refs
resets it to the current size, so one process can measure consecutive phases.
Without /proc (not Linux) `resource.getrusage` gives the lifetime peak.
"""

from __future__ import annotations

import resource

_STATUS = "/proc/self/status"


def _status_mb(key: str) -> float | None:
  try:
    with open(_STATUS) as f:
      for line in f:
        if line.startswith(key + ":"):
          return int(line.split()[1]) / 1024.0   # the value is in kB
  except OSError:
    return None
  return None


def current_rss_mb() -> float | None:
  """Resident set size now (MiB), or None where /proc is unavailable."""
  return _status_mb("VmRSS")


def peak_rss_mb() -> float:
  """Peak resident set size (MiB) since start or the last `reset_peak`."""
  peak = _status_mb("VmHWM")
  if peak is not None:
    return peak
  # Linux reports ru_maxrss in kB (macOS in bytes; this is the fallback only).
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak() -> bool:
  """Resets VmHWM to the current RSS; False where the kernel refuses."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False
