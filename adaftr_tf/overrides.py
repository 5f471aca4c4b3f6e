"""Typed values of config fields: `key=value` overrides and JSON mappings.

  apply(config, ["loss.tau_min=0.05", "model.expert_units=64,32"])

An override names a field by its dotted path; its text becomes the field's
type: `true`/`false` for bools, `none` for an optional field, comma lists for
tuples, a value of the Literal choice list for a choice. An unknown key, a
section named as a field and a value of the wrong type raise `ConfigError`
listing what is valid.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, Sequence

from adaftr_tf import choices as C
from adaftr_tf.config import ConfigError


def field_types(section_type) -> dict[str, Any]:
  """name -> type annotation of a config dataclass's fields."""
  return typing.get_type_hints(section_type)


def coerce(value: Any, hint: Any, key: str) -> Any:
  """A JSON value as the field type `hint`; ConfigError naming `key` if not."""
  if dataclasses.is_dataclass(hint):
    if not isinstance(value, Mapping):
      raise ConfigError(f"{key} must be a mapping, got {value!r}")
    return from_dict(hint, value, key + ".")
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):  # `T | None`
    if value is None:
      return None
    return coerce(value, next(a for a in args if a is not type(None)), key)
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"{key} must be a list, got {value!r}")
    return tuple(coerce(v, args[0], key) for v in value)
  if C.is_choice(hint):
    if value not in args:
      raise ConfigError(f"{key}={value!r} is not valid; choose one of {args}")
    return value
  if hint is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if hint is int and isinstance(value, float) and value.is_integer():
    return int(value)
  if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
    return value
  raise ConfigError(f"{key} must be {_type_name(hint)}, got {value!r}")


def _type_name(hint) -> str:
  return {bool: "a bool (true/false)", int: "an int", float: "a number",
          str: "a string"}.get(hint, str(hint))


def from_dict(section_type, data: Mapping[str, Any], prefix: str = ""):
  """A config dataclass from a (JSON) mapping; unknown keys are refused."""
  known = field_types(section_type)
  unknown = sorted(set(data) - set(known))
  if unknown:
    where = prefix.rstrip(".") or "the top level"
    raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]};"
                      f" valid keys under {where}: {sorted(known)}")
  return section_type(**{k: coerce(v, known[k], prefix + k)
                         for k, v in data.items()})


def parse_text(text: str, hint: Any, key: str) -> Any:
  """The override text of a field as a value of its type (see module doc)."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    if text.strip().lower() == "none" and type(None) in args:
      return None
    hint = next(a for a in args if a is not type(None))
  if typing.get_origin(hint) is tuple:
    inner = typing.get_args(hint)[0]
    items = [v.strip() for v in text.strip("()[] ").split(",") if v.strip()]
    return coerce(tuple(parse_text(v, inner, key) for v in items), hint, key)
  if hint is bool:
    if text.lower() not in ("true", "false", "1", "0"):
      raise ConfigError(f"{key} must be a bool (true/false), got {text!r}")
    return text.lower() in ("true", "1")
  if hint in (int, float):
    try:
      return hint(text.replace("_", "") if hint is int else text)
    except ValueError:
      raise ConfigError(f"{key} must be {_type_name(hint)}, got "
                        f"{text!r}") from None
  return coerce(text, hint, key)


def apply(config, items: Sequence[str]):
  """Returns `config` with the `section.field=value` overrides applied."""
  for item in items:
    if "=" not in item:
      raise ConfigError(f"override {item!r} must look like key=value, e.g. "
                        "loss.tau_min=0.05")
    key, text = (part.strip() for part in item.split("=", 1))
    config = _replace(config, key.split("."), text, key)
  return config


def _replace(section, path: list[str], text: str, key: str):
  known = field_types(type(section))
  name = path[0]
  if name not in known:
    parent = key[:-len(".".join(path))].rstrip(".") or "the top level"
    raise ConfigError(f"unknown config key {key!r}: {name!r} is not one of "
                      f"{sorted(known)} (under {parent})")
  hint = known[name]
  if len(path) == 1:
    if dataclasses.is_dataclass(hint):
      raise ConfigError(f"config key {key!r} is a section; set one of its "
                        f"fields: {sorted(field_types(hint))}")
    return dataclasses.replace(section, **{name: parse_text(text, hint, key)})
  if not dataclasses.is_dataclass(hint):
    raise ConfigError(f"config key {key!r}: {name!r} has no sub-fields")
  child = _replace(getattr(section, name), path[1:], text, key)
  return dataclasses.replace(section, **{name: child})
