"""Flag helpers for the absl entrypoints (pipelines.*, export.*).

Entrypoints define their flags at import time; tests import several of them
into one process, where absl refuses a second definition of a shared flag such
as `--model_dir`. These helpers define a flag only once, and refuse a second
definition with another type, so shared flags mean the same thing everywhere.
"""

from __future__ import annotations

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def begin_job(argv, required=(), quiet: bool = True) -> None:
  """The common start of an entrypoint's main.

  Refuses stray positional arguments and any flag of `required` left empty
  (`app.UsageError` naming it); `quiet` keeps absl logging to warnings.
  """
  if quiet:
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for name in required:
    if not FLAGS[name].value:
      raise app.UsageError(f"--{name} is required")


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
