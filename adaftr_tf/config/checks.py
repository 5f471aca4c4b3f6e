"""What every config section's validation shares: the error and two checks."""

from __future__ import annotations

import math


class ConfigError(ValueError):
  """An invalid or contradictory setting, an unknown key or experiment."""


def positive(section, prefix: str, *keys: str,
              allow_zero: bool = False) -> None:
  """Each named field of `section` is > 0 (>= 0 with allow_zero), finite."""
  for key in keys:
    value = getattr(section, key)
    ok = value >= 0 if allow_zero else value > 0
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
      raise ConfigError(f"{prefix}.{key}={value!r} must be "
                        f"{'>= 0' if allow_zero else '> 0'}")


def units(section, prefix: str, *keys: str, allow_empty=False) -> None:
  """Each named field of `section` is a tuple of positive ints."""
  for key in keys:
    value = getattr(section, key)
    if (not value and not allow_empty) or any(u <= 0 for u in value):
      raise ConfigError(f"{prefix}.{key}={value} must be a "
                        f"{'' if allow_empty else 'non-empty '}tuple of "
                        "positive ints")
