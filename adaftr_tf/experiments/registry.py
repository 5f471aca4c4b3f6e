"""The registry's machinery: register and look up presets and methods.

The definitions are in presets.py, methods.py and relatedness.py; the
package `adaftr_tf.experiments` registers them all and exports this API.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from adaftr_tf import overrides
from adaftr_tf.config import Config
from adaftr_tf.config import ConfigError
from adaftr_tf.experiments.tuning import SHARED_SPACE
from adaftr_tf.experiments.tuning import SWEEP_SPACES
from adaftr_tf.experiments.tuning import TUNED

_PRESETS: dict[str, Callable[[], Config]] = {}


@dataclasses.dataclass(frozen=True)
class Method:
  """A benchmarked method.

  Attributes:
    name: its registry name.
    define: `Config -> Config`, the method applied to a preset.
    space: its key of SWEEP_SPACES.
    tuned_as: its key of TUNED (AdaFTR's ablations start from AdaFTR's).
    baseline: the method it is compared with, paired by seed (AdaFTR(B)
      against B), or None.
    teachers: the methods whose runs with the same seed set this method's
      tau (`loss.tau_source=teacher`; several: cross-fitted, in fold
      order): the benchmark trains them first and points `loss.teacher_dir`
      at their run folders; or ().
    teacher_seeds: an ensemble of each teacher over this many seeds: seed
      index s reads the teachers' runs of seed indices s, s+1, ... (modulo
      the benchmark's number of seeds); 1: its own seed's runs only.
  """

  name: str
  define: Callable[[Config], Config]
  space: str
  tuned_as: str
  baseline: str | None = None
  teachers: tuple[str, ...] = ()
  teacher_seeds: int = 1


_METHODS: dict[str, Method] = {}
_GROUPS: dict[str, tuple[str, ...]] = {}


def preset(name: str):
  """Registers a `() -> Config` function as the preset `name`."""
  def register(fn: Callable[[], Config]) -> Callable[[], Config]:
    if name in _PRESETS:
      raise ValueError(f"preset {name!r} is registered twice")
    _PRESETS[name] = fn
    return fn
  return register


def method(name: str, space: str, tuned_as: str | None = None,
           baseline: str | None = None, teachers: Sequence[str] = (),
           teacher_seeds: int = 1):
  """Registers a `Config -> Config` function as the method `name`."""
  def register(fn: Callable[[Config], Config]) -> Callable[[Config], Config]:
    if name in _METHODS:
      raise ValueError(f"method {name!r} is registered twice")
    for teacher in teachers:
      if teacher not in _METHODS:
        raise ValueError(f"method {name!r}: its teacher {teacher!r} must be "
                         "registered first")
    _METHODS[name] = Method(name, fn, space, tuned_as or name, baseline,
                            tuple(teachers), teacher_seeds)
    return fn
  return register


def group(name: str, members) -> None:
  """Registers a named set of methods (benchmark_quality --methods=@name)."""
  if name in _GROUPS:
    raise ValueError(f"group {name!r} is registered twice")
  unknown = [m for m in members if m not in _METHODS]
  if unknown:
    raise ValueError(f"group {name!r} names unregistered methods {unknown}")
  _GROUPS[name] = tuple(members)


def group_names() -> list[str]:
  return sorted(_GROUPS)


def group_members(name: str) -> list[str]:
  """The methods of group `name`; ConfigError lists the valid groups."""
  if name not in _GROUPS:
    raise ConfigError(f"unknown method group {name!r}; valid groups: "
                      f"{group_names()}")
  return list(_GROUPS[name])


def preset_names() -> list[str]:
  return sorted(_PRESETS)


def method_names() -> list[str]:
  """The methods in registration order (baselines first, then AdaFTR's)."""
  return list(_METHODS)


def get_preset(name: str) -> Config:
  """The named preset; ConfigError lists the valid names."""
  if name not in _PRESETS:
    raise ConfigError(f"unknown preset {name!r}; valid presets: "
                      f"{preset_names()}")
  return _PRESETS[name]()


def config_of(preset_name: str, items: Sequence[str] = ()) -> Config:
  """The validated config of a preset plus `key=value` overrides.

  Raises:
    ConfigError: an unknown preset or key, a bad value, a contradiction.
  """
  return overrides.apply(get_preset(preset_name), items).validate()


def get_method(name: str) -> Method:
  """The named method; ConfigError lists the valid names."""
  if name not in _METHODS:
    raise ConfigError(f"unknown method {name!r}; valid methods: "
                      f"{method_names()}")
  return _METHODS[name]


def tuned_overrides(name: str) -> list[str]:
  """The sweep winner's overrides for method `name` ([] when none)."""
  return list(TUNED.get(get_method(name).tuned_as, ()))


def method_config(name: str, base: Config, tuned: bool = True) -> Config:
  """`base`, then the method's tuned knobs (if `tuned`), then the method.

  The definition comes last, so what a method is (e.g. an ablation's switch)
  wins over a knob its family's winner set.
  """
  config = overrides.apply(base, tuned_overrides(name) if tuned else [])
  return get_method(name).define(config)


def sweep_space(name: str) -> dict[str, list[str]]:
  """The knobs a sweep of method `name` draws from (its own + shared)."""
  return {**SHARED_SPACE, **SWEEP_SPACES[get_method(name).space]}


def replace_fields(config: Config, **sections) -> Config:
  """`config` with fields replaced per section, e.g.
  `replace_fields(c, model={"name": "aitm"}, train={"seed": 1})`."""
  return dataclasses.replace(config, **{
      key: dataclasses.replace(getattr(config, key), **fields)
      for key, fields in sections.items()})
