"""Tests of adaftr_tf/config/checks.py."""

import dataclasses

import pytest

from adaftr_tf.config import checks


@dataclasses.dataclass
class _Section:
  size: float = 1.0
  count: int = 0
  units: tuple = (8, 4)
  none: tuple = ()


def test_config_error_is_a_value_error():
  assert issubclass(checks.ConfigError, ValueError)


def test_positive_names_the_field_and_the_bound():
  checks.positive(_Section(), "s", "size")
  checks.positive(_Section(), "s", "count", allow_zero=True)
  with pytest.raises(checks.ConfigError, match=r"s\.count=0 must be > 0"):
    checks.positive(_Section(), "s", "size", "count")
  with pytest.raises(checks.ConfigError, match=r"s\.size=inf must be >= 0"):
    checks.positive(_Section(size=float("inf")), "s", "size", allow_zero=True)


def test_units_are_positive_int_tuples():
  checks.units(_Section(), "s", "units")
  checks.units(_Section(), "s", "none", allow_empty=True)
  with pytest.raises(checks.ConfigError, match=r"s\.none=\(\) must be a "
                     "non-empty tuple of positive ints"):
    checks.units(_Section(), "s", "none")
  with pytest.raises(checks.ConfigError, match=r"s\.units=\(8, 0\) must be"):
    checks.units(_Section(units=(8, 0)), "s", "units")


@pytest.mark.parametrize("text, address", [
    ("grpc://localhost:5050", "grpc://localhost:5050"),
    ("localhost:5050", "grpc://localhost:5050"),
    (" dispatcher.example.com:80 ", "grpc://dispatcher.example.com:80"),
    ("10.0.0.7:05050", "grpc://10.0.0.7:5050"),
    ("[::1]:5050", "grpc://[::1]:5050"),
    ("grpc://[fe80::1]:1", "grpc://[fe80::1]:1"),
])
def test_service_address_is_normalised(text, address):
  assert checks.service_address(text) == address


@pytest.mark.parametrize("text", [
    "", "localhost", "localhost:", ":5050", "localhost:0", "localhost:65536",
    "localhost:port", "http://localhost:5050", "grpc://", "grpc://host",
    "::1:5050", "host name:5050", "user@host:5050", None, 5050])
def test_a_bad_service_address_names_the_expected_form(text):
  with pytest.raises(checks.ConfigError, match=(
      r"^data\.service=.* must look like grpc://HOST:PORT or HOST:PORT "
      r"\(e\.g\. grpc://localhost:5050\)$")):
    checks.service_address(text, "data.service")
