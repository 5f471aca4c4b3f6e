"""The tree's rules, checked over every module's source (no imports run).

* One import direction: adaftr_tf <- pipelines.data <- pipelines.training <-
  export and pipelines.benchmarks <- entrypoints (the absl mains).
* Only entrypoints touch absl flags; no entrypoint imports another one.
* Every file operation on data, model and export directories goes through
  tf.io.gfile (no open/os.path/shutil/glob on them in the libraries).
* Modules stay small.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("adaftr_tf", "pipelines", "export")
ENTRYPOINTS = {"pipelines.train", "pipelines.demo", "pipelines.convert",
               "pipelines.data_service",
               "pipelines.sweep", "pipelines.benchmark_quality",
               "pipelines.benchmark_speed", "pipelines.teacher_leakage",
               "pipelines.teacher_fields", "pipelines.cli",
               "export.export_savedmodel", "export.check", "export.score"}
# Layer of each package prefix (longest match); an import must not reach up.
LAYERS = {"adaftr_tf": 0, "pipelines.data": 1, "pipelines.training": 2,
          "export": 3, "pipelines.benchmarks": 3}
TOP = 4   # entrypoints


def _modules():
  """{dotted name: path} of every module of the three packages."""
  found = {}
  for package in PACKAGES:
    for dirpath, _, names in os.walk(os.path.join(ROOT, package)):
      for name in names:
        if name.endswith(".py"):
          path = os.path.join(dirpath, name)
          dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
          found[dotted.removesuffix(".__init__")] = path
  return found


MODULES = _modules()


def _tree(path):
  with open(path) as f:
    return ast.parse(f.read(), path)


def _imports(path):
  """(line, imported module) of every import of a project module."""
  found = []
  for node in ast.walk(_tree(path)):
    if isinstance(node, ast.Import):
      found += [(node.lineno, a.name) for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      for alias in node.names:
        full = f"{node.module}.{alias.name}"
        found.append((node.lineno, full if full in MODULES else node.module))
  return [(line, name) for line, name in found
          if name.split(".")[0] in PACKAGES]


def _family(module):
  """The LAYERS prefix a module belongs to."""
  return max((p for p in LAYERS if module == p or module.startswith(p + ".")),
             key=len, default=None)


def _layer(module):
  if module in ENTRYPOINTS:
    return TOP
  prefix = _family(module)
  if prefix is None:
    raise AssertionError(f"{module} belongs to no layer: place it in "
                         f"{sorted(LAYERS)} or list it as an entrypoint")
  return LAYERS[prefix]


def test_every_module_has_a_layer():
  for module in MODULES:
    if module not in ("pipelines", "export"):   # the bare packages
      _layer(module)


def test_imports_go_one_way():
  wrong = []
  for module, path in MODULES.items():
    if module in ("pipelines", "export"):
      continue
    for line, imported in _imports(path):
      if imported in ("pipelines", "export"):
        continue   # the packages' docstring-only __init__
      mine, theirs = _layer(module), _layer(imported)
      if theirs > mine or (theirs == mine == 3
                           and _family(module) != _family(imported)):
        wrong.append(f"{os.path.relpath(path, ROOT)}:{line} imports "
                     f"{imported}")
  assert not wrong, "imports against the direction adaftr_tf <- data <- " \
      "training <- export, benchmarks <- entrypoints:\n" + "\n".join(wrong)


def test_no_entrypoint_imports_another():
  wrong = [f"{module} imports {imported}"
           for module in ENTRYPOINTS - {"pipelines.cli"}
           for _, imported in _imports(MODULES[module])
           if imported in ENTRYPOINTS - {"pipelines.cli"}]
  assert not wrong, wrong


def test_only_entrypoints_touch_absl_flags():
  wrong = []
  for module, path in MODULES.items():
    if module in ENTRYPOINTS:
      continue
    for node in ast.walk(_tree(path)):
      if isinstance(node, ast.ImportFrom) and node.module == "absl" and any(
          a.name == "flags" for a in node.names):
        wrong.append(module)
  assert not wrong, f"absl flags outside the entrypoints: {wrong}"


# Calls that bypass tf.io.gfile. Raw input files of the converters (read line
# by line, ~12x faster than GFile) and the speed harness's local scratch
# files are the documented exceptions.
LOCAL_IO = {"open", "os.makedirs", "os.listdir", "os.remove", "os.rename",
            "os.replace", "os.path.exists", "os.path.getsize",
            "os.path.isdir", "shutil.rmtree", "shutil.copy", "glob.glob"}
LOCAL_IO_ALLOWED = {
    "pipelines.data.formats.lines": "raw input files, read line by line",
    "pipelines.data.formats.base": "raw input files (glob of the input)",
    "pipelines.data.formats.aliexpress_raw": "raw input files",
    "pipelines.data.formats.aliccp_raw": "raw input files",
    "pipelines.data.files": "local folders: the atomic os.rename",
    "pipelines.data.tfds.common": "raw files of the TFDS manual_dir",
    "pipelines.benchmarks.speed.harness": "local scratch files of the rows",
    "pipelines.benchmarks.speed.worker": "local scratch files of the rows",
    "pipelines.benchmarks.speed.memory": "/proc of this process",
    "pipelines.training.train_lib": "a non-chief's local scratch folder",
    "pipelines.training.distribute": "a non-chief's local scratch folder",
}


def _call_name(node):
  parts, func = [], node.func
  while isinstance(func, ast.Attribute):
    parts.append(func.attr)
    func = func.value
  if isinstance(func, ast.Name):
    parts.append(func.id)
  return ".".join(reversed(parts))


def test_file_operations_go_through_gfile():
  wrong = []
  for module, path in MODULES.items():
    if module in LOCAL_IO_ALLOWED or module in ENTRYPOINTS:
      continue
    for node in ast.walk(_tree(path)):
      if isinstance(node, ast.Call) and _call_name(node) in LOCAL_IO:
        wrong.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} "
                     f"{_call_name(node)}")
  assert not wrong, "use tf.io.gfile:\n" + "\n".join(wrong)


MAX_LINES = 350
LONG_ALLOWED = ("pipelines/data/records.py", "pipelines/data/synthetic.py")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
  path = MODULES[module]
  if os.path.relpath(path, ROOT) in LONG_ALLOWED:
    return
  with open(path) as f:
    lines = sum(1 for _ in f)
  assert lines <= MAX_LINES, f"{module}: {lines} lines"
