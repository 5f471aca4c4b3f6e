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


SERVICE_FORM = "grpc://HOST:PORT or HOST:PORT (e.g. grpc://localhost:5050)"


def service_address(text: str, name: str = "tf.data service address") -> str:
  """A tf.data service dispatcher address, normalised to `grpc://host:port`.

  Accepts `grpc://host:port` or `host:port`; the host may be a name, an IPv4
  address or a bracketed IPv6 address (`[::1]:5050`).

  Raises:
    ConfigError: any other form (naming the expected one).
  """
  address = text.strip() if isinstance(text, str) else ""
  rest = address[len("grpc://"):] if address.startswith("grpc://") else address
  host, _, port = rest.rpartition(":")
  bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
  ok = (bare and port.isdigit() and 0 < int(port) < 65536
        and not any(c in bare for c in "/ \t@")
        and (":" not in bare or bare != host))
  if not ok:
    raise ConfigError(f"{name}={text!r} must look like {SERVICE_FORM}")
  return f"grpc://{host}:{int(port)}"
