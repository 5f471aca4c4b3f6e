"""Flag helpers for the absl entrypoints (pipelines.*, export.*).

Entrypoints define their flags at import time; tests import several of them
into one process, where absl refuses a second definition of a shared flag such
as `--model_dir`. These helpers define a flag only once, and refuse a second
definition with another type, so shared flags mean the same thing everywhere.
"""

from __future__ import annotations

from absl import flags

FLAGS = flags.FLAGS


def _define(definer, kind: str, name: str, default, help_text: str, **kwargs):
  if name in FLAGS:
    existing = FLAGS[name].flag_type()
    if existing != kind:
      raise ValueError(f"flag --{name} is already defined as {existing}, "
                       f"cannot redefine it as {kind}")
    return
  definer(name, default, help_text, **kwargs)


def define_string(name, default, help_text):
  _define(flags.DEFINE_string, "string", name, default, help_text)


def define_integer(name, default, help_text):
  _define(flags.DEFINE_integer, "int", name, default, help_text)


def define_float(name, default, help_text):
  _define(flags.DEFINE_float, "float", name, default, help_text)


def define_bool(name, default, help_text):
  _define(flags.DEFINE_bool, "bool", name, default, help_text)


def define_multi_string(name, default, help_text):
  _define(flags.DEFINE_multi_string, "multi string", name, default, help_text)


def define_enum(name, default, choices, help_text):
  _define(lambda n, d, h: flags.DEFINE_enum(n, d, choices, h), "string enum",
          name, default, help_text)
