"""XLA inspection for tests: compile-time constants of a compiled function."""

import re


def entry_parameters(function, *args) -> int:
  """Parameters of the XLA entry computation of the `jit_compile`
  `function(*args)`: one per input of the traced function, unless XLA made
  some inputs compile-time constants (their values then key the compilation
  cache: a new value, a new compilation)."""
  hlo = function.experimental_get_compiler_ir(*args)(stage="hlo")
  entry = hlo[hlo.index("ENTRY"):]
  entry = entry[:entry.index("\n}")]
  return len(re.findall(r"parameter\(\d+\)", entry))


def inputs(function, *args) -> int:
  """Inputs (flattened arguments and captured variables) of the traced
  `function(*args)`."""
  return len(function.get_concrete_function(*args).inputs)
