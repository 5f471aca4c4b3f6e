"""The package as users meet it: imports, entrypoints, usage errors, and the
console scripts of `pip install .` outside the checkout."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_import_with_keras3_raises_import_error_saying_what_to_set():
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_USE_LEGACY_KERAS"] = "0"
  code = "import tensorflow; import adaftr_tf"
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode != 0
  assert "ImportError" in done.stderr
  assert "TF_USE_LEGACY_KERAS=1" in done.stderr


@pytest.mark.slow
def test_import_first_sets_legacy_keras():
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  code = ("import adaftr_tf, tensorflow as tf; "
          "assert tf.keras.__name__.startswith('tf_keras'), tf.keras.__name__")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 0, done.stderr[-2000:]


ENTRYPOINTS = ("pipelines.train", "pipelines.demo", "pipelines.convert",
               "pipelines.data_service",
               "pipelines.benchmark_quality", "pipelines.benchmark_speed",
               "pipelines.sweep", "pipelines.teacher_leakage",
               "pipelines.teacher_fields",
               "export.export_savedmodel", "export.check",
               "export.score")


@pytest.mark.slow
def test_every_entrypoint_imports_into_one_process_in_any_order():
  """Tests import several entrypoints into one pytest process; a flag that two
  of them define must go through pipelines.cli, or absl refuses the second."""
  for order in (ENTRYPOINTS, tuple(reversed(ENTRYPOINTS))):
    code = ("import importlib, os\n"
            "os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
            f"for name in {order!r}:\n"
            "  importlib.import_module(name)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_flags_are_defined_only_through_pipelines_cli():
  offenders = []
  for folder in ("adaftr_tf", "pipelines", "export"):
    for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
      for name in names:
        path = os.path.join(dirpath, name)
        if not name.endswith(".py") or path.endswith(os.path.join(
            "pipelines", "cli.py")):
          continue
        with open(path) as f:
          if "flags.DEFINE_" in f.read():
            offenders.append(os.path.relpath(path, ROOT))
  assert not offenders, f"define flags with pipelines.cli in {offenders}"


def test_begin_job_refuses_stray_arguments_and_missing_flags():
  from absl import app
  from absl import flags
  from absl.testing import flagsaver
  import pytest
  from pipelines import cli
  cli.define_string("begin_job_probe", None, "test flag")
  with flagsaver.flagsaver():
    flags.FLAGS(["job"])
    with pytest.raises(app.UsageError, match=r"unexpected arguments: \['x'\]"):
      cli.begin_job(["job", "x"])
    with pytest.raises(app.UsageError, match="--begin_job_probe is required"):
      cli.begin_job(["job"], required=("begin_job_probe",))
    flags.FLAGS.begin_job_probe = "set"
    cli.begin_job(["job"], required=("begin_job_probe",))


USAGE_ERRORS = [
    ("pipelines.train", ["--preset=nope", "--model_dir=m"],
     "unknown preset 'nope'; valid presets: ['aliccp', 'aliexpress', 'bench'"),
    ("pipelines.train", ["--preset=tiny", "--model_dir=m",
                         "--override=loss.tau_mn=1"],
     "unknown config key 'loss.tau_mn': 'tau_mn' is not one of ["),
    ("pipelines.train", ["--preset=tiny", "--model_dir=m",
                         "--override=model.backbone=transformer"],
     "model.backbone='transformer' is not valid; choose one of ('mmoe'"),
    ("pipelines.train", ["--preset=tiny", "--model_dir=m",
                         "--override=train.epochs=x"],
     "train.epochs must be an int, got 'x'"),
    ("pipelines.train", ["--preset=tiny", "--model_dir=m",
                         "--override=data.layout=columns"],
     "data.layout='columns' is not valid; choose one of ('blocks', 'rows')"),
    ("pipelines.convert", ["--format=census", "--input=i", "--output_dir=o",
                           "--record_layout=columns"],
     "flag --record_layout=columns: value should be one of <blocks|rows>"),
    ("pipelines.train", ["--preset=tiny"], "--model_dir is required"),
    ("pipelines.train", ["--preset=tiny", "--model_dir=m", "--strategy=tpu"],
     "flag --strategy=tpu: value should be one of <default|mirrored|"),
    ("pipelines.train", ["--preset=tiny", "--model_dir=m", "--nosuchflag"],
     "Unknown command line flag 'nosuchflag'"),
    ("pipelines.train", ["--model_dir=m", "stray"], "unexpected arguments"),
    ("pipelines.benchmark_quality", ["--output_dir=o", "--methods=esmm,nope"],
     "unknown method 'nope'; valid methods: ['single_task'"),
    ("pipelines.benchmark_quality", ["--output_dir=o", "--seeds=2",
                                     "--methods=adaftr_esmm_gate_teacher_"
                                     "ensemble_3"],
     "reads its teachers' runs of 3 seeds: run at least --seeds=3"),
    ("pipelines.sweep", ["--output_dir=o", "--method=nope"],
     "unknown method 'nope'"),
    ("pipelines.demo", ["--preset=tiny", "--override=runtime.strategy=tpu"],
     "runtime.strategy='tpu' is not valid; choose one of ('default'"),
    ("export.export_savedmodel", ["--model_dir=m", "--export_base=e"],
     "--data_dir is required"),
    ("export.score", [], "--saved_model and --records are required"),
]


@pytest.mark.parametrize("module, args, message", USAGE_ERRORS)
def test_a_usage_error_is_one_line_with_status_2(module, args, message,
                                                 capsys):
  import importlib
  from absl import flags
  from absl.testing import flagsaver
  from pipelines import cli
  main = importlib.import_module(module).main
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as exit_info:
      cli.run(main, argv=[module] + args)
  assert exit_info.value.code == 2
  lines = capsys.readouterr().err.strip().splitlines()
  assert lines[-1].startswith("error: ") and message in lines[-1], lines
  assert not any("Traceback" in line for line in lines)


def _console_scripts() -> dict:
  """setup.py's CONSOLE_SCRIPTS, read without running setup()."""
  import ast
  with open(os.path.join(ROOT, "setup.py")) as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    if isinstance(node, ast.Assign) and node.targets[0].id == "CONSOLE_SCRIPTS":
      return ast.literal_eval(node.value)
  raise AssertionError("setup.py has no CONSOLE_SCRIPTS")


def test_every_entrypoint_is_a_console_script_with_a_run_function():
  import importlib
  scripts = _console_scripts()
  assert sorted(scripts.values()) == sorted(ENTRYPOINTS)
  for script, module in scripts.items():
    assert callable(importlib.import_module(module).run), script


@pytest.mark.slow
def test_pip_install_gives_working_console_scripts_outside_the_checkout(
    tmp_path):
  """`pip install .` (no dependencies: they are this venv's) into a folder
  outside the checkout; the scripts run from another working directory."""
  site = tmp_path / "site"
  done = subprocess.run(
      [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
       "--no-build-isolation", f"--target={site}", ROOT],
      capture_output=True, text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  scripts = sorted(p.name for p in (site / "bin").iterdir())
  assert scripts == sorted(_console_scripts()), scripts
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env.update(PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
  work = tmp_path / "elsewhere"
  work.mkdir()

  def script(name, *args):
    return subprocess.run([str(site / "bin" / name), *args], cwd=work,
                          env=env, capture_output=True, text=True,
                          timeout=600, check=False)

  where = subprocess.run(
      [sys.executable, "-c", "import adaftr_tf, pipelines, export; "
       "print(adaftr_tf.__file__, pipelines.__file__, export.__file__)"],
      cwd=work, env=env, capture_output=True, text=True, timeout=120)
  assert where.stdout.count(str(site)) == 3, where.stdout + where.stderr
  trained = script("adaftr-train", "--preset=tiny", "--model_dir=run",
                   "--data_dir=data", "--verbose=0",
                   "--override=train.steps_per_epoch=2")
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert "best epoch 1: valid CTR AUC" in trained.stdout
  assert (work / "run" / "best" / "weights.index").exists()
  refused = script("adaftr-train", "--preset=nope", "--model_dir=run")
  assert refused.returncode == 2
  assert refused.stderr.strip().splitlines()[-1].startswith(
      "error: unknown preset 'nope'")
  assert "Traceback" not in refused.stderr
  import importlib
  # Every script's help, the scripts running side by side (each spends its
  # ~3 s importing TensorFlow on one core).
  helping = {name: subprocess.Popen(
      [str(site / "bin" / name), "--helpfull"], cwd=work, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in _console_scripts()}
  for name, module in _console_scripts().items():
    stdout, stderr = helping[name].communicate(timeout=600)
    usage = importlib.import_module(module).__doc__.strip().splitlines()[0]
    assert usage in stdout, (name, stdout[:500], stderr[-2000:])
