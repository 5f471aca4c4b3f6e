"""What the entrypoints share (pipelines/*.py, export/*.py mains).

* Flags: entrypoints define their flags at import time; tests import several
  of them into one process, where absl refuses a second definition of a
  shared flag such as `--model_dir`. `define_*` define a flag once, and
  refuse a second definition with another type, so a shared flag means the
  same thing everywhere.
* `run(main)`: `app.run` whose usage errors (a bad flag, an unknown preset,
  override key or value, a missing required flag) print one line
  `error: ...` naming the problem and the valid choices, and exit with
  status 2, without a traceback.
* `config_from_flags`: the validated config of `--preset` and `--override`.
* `report`: a measuring job's report, printed and written as JSON.

This module imports absl alone (export.score runs in a TensorFlow-only
process).
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
USAGE_EXIT = 2


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
    if FLAGS[name].value in (None, ""):
      raise app.UsageError(f"--{name} is required")


def config_from_flags(preset: str, overrides: Sequence[str]):
  """The validated config of a preset plus `key=value` overrides.

  Raises:
    adaftr_tf.config.ConfigError: an unknown preset or key, a bad value.
  """
  from adaftr_tf import experiments
  return experiments.config_of(preset, overrides)


def _parse_flags(argv):
  try:
    return FLAGS(argv)
  except flags.Error as err:
    _usage_error(str(err))


def report(measure: Callable[[], dict], format_report: Callable[[dict], str],
           output: str | None) -> dict:
  """Runs `measure` (its ValueError or FileNotFoundError a usage error),
  prints `format_report` of its result and, with `output`, writes the
  result there as JSON (tf.io.gfile: any filesystem TensorFlow reads)."""
  import json
  import tensorflow as tf  # only a measuring job's process needs it
  try:
    result = measure()
  except (ValueError, FileNotFoundError) as err:
    raise app.UsageError(str(err)) from None
  print(format_report(result))
  if output:
    with tf.io.gfile.GFile(output, "w") as f:
      json.dump(result, f, indent=1)
  return result


def _usage_error(message: str) -> None:
  program = sys.argv[0].rsplit("/", 1)[-1]
  print(f"error: {message} (run {program} --helpfull for every flag)",
        file=sys.stderr)
  sys.exit(USAGE_EXIT)


def run(main: Callable[[list[str]], int | None],
        argv: Sequence[str] | None = None) -> None:
  """Runs an absl `main` on `argv` (default: sys.argv); usage errors become
  one line on stderr and exit status 2."""
  def guarded(argv):
    try:
      return main(argv)
    except Exception as err:  # noqa: BLE001  (re-raised unless a usage error)
      # A ConfigError can only come from a loaded adaftr_tf.config: looked
      # up, not imported, so that a TensorFlow-only main stays so.
      config = sys.modules.get("adaftr_tf.config")
      usage = (app.UsageError,) + ((config.ConfigError,) if config else ())
      if not isinstance(err, usage):
        raise
      _usage_error(str(err))
  main_module = sys.modules["__main__"]
  if main_module.__doc__ is None:   # a console script: show the job's usage
    main_module.__doc__ = sys.modules[main.__module__].__doc__
  app.run(guarded, argv=None if argv is None else list(argv),
          flags_parser=_parse_flags)


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
