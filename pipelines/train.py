"""Train a CTR/CVR model: `python -m pipelines.train --preset=NAME --model_dir=DIR`.

  --preset           a named config (see adaftr_tf.config.PRESETS): demo, tiny, ...
  --model_dir        where checkpoints, TensorBoard logs and config.json go;
                     rerunning the same command resumes from its last step
                     checkpoint
  --data_dir         converted data, or where synthetic data is generated when
                     missing (default: data/synthetic-<hash of the config>)
  --override         key=value, repeatable: e.g. --override=loss.tau_min=0.05
  --strategy         default | mirrored | multi_worker_mirrored |
                     parameter_server (sets train.strategy); multi-worker
                     strategies read the cluster from TF_CONFIG
  --num_cpu_devices  split the CPU into N logical devices (try `mirrored`
                     without GPUs)
  --devices          mirrored: the devices to use, e.g. /gpu:0,/gpu:1
  --in_process_cluster  parameter_server on one machine: WORKERS,PS servers
                     started inside this process (no TF_CONFIG needed)

Every flag and override is validated before any data is read or generated.
See the README section "Scaling out" for multi-GPU hosts and clusters.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

import adaftr_tf  # noqa: E402,F401
from adaftr_tf import config as config_lib  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "demo", "Config preset name.")
cli.define_string("model_dir", None, "Output directory of the run.")
cli.define_string("data_dir", None, "Data directory (see module docstring).")
cli.define_multi_string("override", [], "Config override key=value.")
cli.define_integer("verbose", 1, "Keras fit verbosity (0, 1 or 2).")
cli.define_enum("strategy", None, list(config_lib.STRATEGIES),
                "tf.distribute strategy (default: the config's "
                "train.strategy).")
cli.define_integer("num_cpu_devices", 0,
                   "Split the host CPU into N logical devices (0: leave it).")
cli.define_string("devices", None,
                  "mirrored only: comma-separated device names.")
cli.define_string("in_process_cluster", None,
                  "parameter_server only: 'WORKERS,PS' in-process servers.")


def config_from_flags() -> config_lib.Config:
  """The validated config named by --preset, --override and --strategy."""
  config = config_lib.get_preset(FLAGS.preset)
  config = config_lib.apply_overrides(config, FLAGS.override)
  if FLAGS.strategy:
    config = config_lib.apply_overrides(
        config, [f"train.strategy={FLAGS.strategy}"])
  return config.validate()


def _cluster_sizes(text: str, strategy: str) -> tuple[int, int]:
  if strategy != "parameter_server":
    raise app.UsageError("--in_process_cluster is only for "
                         "--strategy=parameter_server")
  try:
    workers, ps = (int(v) for v in text.split(","))
  except ValueError:
    raise app.UsageError(f"--in_process_cluster={text!r} must look like "
                         "WORKERS,PS, e.g. 2,1") from None
  return workers, ps


def make_strategy(config: config_lib.Config):
  """Devices first, then the strategy: both before any other TF work."""
  from pipelines.training import cluster
  from pipelines.training import distribute
  t = config.train
  if FLAGS.num_cpu_devices:
    distribute.configure_cpu_devices(FLAGS.num_cpu_devices)
  resolver = None
  if FLAGS.in_process_cluster:
    resolver = cluster.start_in_process_cluster(
        *_cluster_sizes(FLAGS.in_process_cluster, t.strategy))
  devices = [d for d in (FLAGS.devices or "").split(",") if d.strip()]
  return distribute.make_strategy(t.strategy, devices=devices or None,
                                  cluster_resolver=resolver,
                                  ps_min_shard_bytes=t.ps_min_shard_bytes)


def main(argv):
  cli.begin_job(argv, required=("model_dir",))
  config = config_from_flags()
  from pipelines.training import cluster
  if cluster.serve_forever_if_server(config.train.strategy):
    return  # a parameter_server worker/ps task: served until killed
  strategy = make_strategy(config)
  from pipelines.training import train_lib  # heavy imports after validation
  result = train_lib.train(config, FLAGS.model_dir, FLAGS.data_dir,
                          verbose=FLAGS.verbose, strategy=strategy)
  valid = result["valid"]
  if valid is None:
    print(f"worker finished at global step {result['global_step']}; the "
          f"chief wrote {FLAGS.model_dir}")
    return
  print(f"best epoch {valid['best_epoch']}: valid CTR AUC "
        f"{valid['ctr_auc']:.4f}, CVR AUC {valid['cvr_auc']:.4f}, "
        f"CTCVR AUC {valid['ctcvr_auc']:.4f}; global step "
        f"{result['global_step']}; model dir {FLAGS.model_dir}")


if __name__ == "__main__":
  app.run(main)
