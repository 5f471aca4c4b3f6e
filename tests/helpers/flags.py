"""Running an entrypoint's absl `main` in the test process."""

from absl import flags
from absl.testing import flagsaver


def run_main(module, argv, prog="prog"):
  """Parses `argv` into fresh flags, runs `module.main`, restores the flags.

  Returns what `main` returns (an exit status for some entrypoints).
  """
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS([prog, *argv])
    return module.main([prog])
