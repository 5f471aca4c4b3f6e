"""The tests mirror the tree: every source module has its test module.

`adaftr_tf/layers/experts.py` is tested by `tests/adaftr_tf/layers/
test_experts.py`, `pipelines/data/reader.py` by `tests/pipelines/data/
test_reader.py`, an entrypoint such as `pipelines/train.py` by
`tests/pipelines/test_train.py`. A module without one is listed in EXEMPT,
with where it is tested instead. Package `__init__.py` files re-export their
modules and are tested with them. The only test modules at the top of tests/
are the cross-cutting ones in TOP_LEVEL.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("adaftr_tf", "pipelines", "export")

# Cross-cutting checks of the whole tree, not of one module.
TOP_LEVEL = {"test_package.py", "test_architecture.py", "test_layout.py"}

# Modules without a test module of their own: where they are tested instead.
EXEMPT = {
    # The fit loop of every training job: tests/pipelines/training/
    # test_train_lib.py (artifacts, faults), test_resume.py (kill and
    # resume), test_cluster.py (sharding report, parameter servers).
    "pipelines/training/fit_loop.py": "tests/pipelines/training/",
    # Converter internals, each exercised by the conversions in
    # tests/pipelines/data/formats/: lines (line reading, blank lines, byte
    # offsets) and report (counts, kept + skipped = read): test_base.py and
    # test_conversion.py; tokens (Ali-CCP feature tokens):
    # test_aliccp_text.py, test_aliccp_raw.py, test_base.py; normalisation
    # (train-split moments), splitting (valid = the end of the train files)
    # and writer (pass-2 shards, output folder): test_conversion.py and
    # test_tfds_dataset.py.
    "pipelines/data/formats/lines.py": "tests/pipelines/data/formats/",
    "pipelines/data/formats/report.py": "tests/pipelines/data/formats/",
    "pipelines/data/formats/tokens.py": "tests/pipelines/data/formats/",
    "pipelines/data/formats/normalisation.py":
        "tests/pipelines/data/formats/",
    "pipelines/data/formats/splitting.py": "tests/pipelines/data/formats/",
    "pipelines/data/formats/writer.py": "tests/pipelines/data/formats/",
    # The builders' shared fields and splits: tfds/test_aliexpress.py,
    # tfds/test_aliccp.py and formats/test_tfds_dataset.py.
    "pipelines/data/tfds/common.py": "tests/pipelines/data/",
    # The quality benchmark's figures (metrics.png, tau.png are written).
    "pipelines/benchmarks/plots.py":
        "tests/pipelines/test_benchmark_quality.py",
    # The measurement phases: every phase but the paired one (its own test
    # file) in a tiny benchmark run (tests/pipelines/test_benchmark_speed.py).
    "pipelines/benchmarks/speed/phases.py":
        "tests/pipelines/test_benchmark_speed.py",
    # The warm-up replay and the comparison with the checkpoint: the check
    # entrypoint's replays (test_check.py), a failed replay refusing an
    # export (test_exporter.py).
    "export/verify.py": "tests/export/test_check.py",
}


def _sources():
  """Source modules (paths relative to the root), `__init__.py` left out."""
  found = []
  for package in PACKAGES:
    for dirpath, _, names in os.walk(os.path.join(ROOT, package)):
      for name in names:
        if name.endswith(".py") and name != "__init__.py":
          found.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
  return sorted(found)


def _mirror(module):
  """`a/b/c.py` -> `tests/a/b/test_c.py`."""
  folder, name = os.path.split(module)
  return os.path.join("tests", folder, "test_" + name)


def _exists(path):
  return os.path.exists(os.path.join(ROOT, path))


def test_every_module_has_a_test_module_at_its_mirrored_path():
  missing = [f"{m} -> {_mirror(m)}" for m in _sources()
             if m not in EXEMPT and not _exists(_mirror(m))]
  assert not missing, ("add the test module (or an EXEMPT entry saying where "
                       "the module is tested):\n" + "\n".join(missing))


def test_every_exemption_is_current_and_points_somewhere():
  sources = set(_sources())
  stale = [m for m in EXEMPT if m not in sources or _exists(_mirror(m))]
  assert not stale, f"drop these EXEMPT entries: {stale}"
  nowhere = [m for m, where in EXEMPT.items() if not _exists(where)]
  assert not nowhere, f"EXEMPT points at missing tests: {nowhere}"


def test_every_test_module_mirrors_a_source_module():
  sources = set(_sources())
  strays = []
  for dirpath, _, names in os.walk(os.path.join(ROOT, "tests")):
    folder = os.path.relpath(dirpath, os.path.join(ROOT, "tests"))
    if folder.split(os.sep)[0] == "helpers":
      continue
    for name in names:
      if not (name.startswith("test_") and name.endswith(".py")):
        continue
      if folder == "." and name in TOP_LEVEL:
        continue
      source = os.path.normpath(os.path.join(folder, name[len("test_"):]))
      if source not in sources:
        strays.append(os.path.normpath(os.path.join("tests", folder, name)))
  assert not strays, f"test modules mirroring no source module: {strays}"


def test_every_test_folder_is_a_package():
  """Equal basenames in different folders (tests/pipelines/test_sweep.py,
  tests/pipelines/benchmarks/test_sweep.py) import as distinct modules."""
  data = os.path.join(ROOT, "tests", "data")   # fixture files, no code
  missing = [os.path.relpath(dirpath, ROOT)
             for dirpath, _, names in os.walk(os.path.join(ROOT, "tests"))
             if "__pycache__" not in dirpath and "__init__.py" not in names
             and not dirpath.startswith(data)]
  assert not missing, f"add an __init__.py to {missing}"
