"""Train a CTR/CVR model: `python -m pipelines.train --preset=NAME --model_dir=DIR`.

  --preset           a named config of adaftr_tf/experiments/: demo, tiny, ...
  --model_dir        where checkpoints, TensorBoard logs and config.json go;
                     rerunning the same command resumes from its last step
                     checkpoint
  --data_dir         converted data, or where synthetic data is generated when
                     missing (default: data/synthetic-<hash of the config>)
  --override         key=value, repeatable: e.g. --override=loss.tau_min=0.05
  --strategy         default | mirrored | multi_worker_mirrored |
                     parameter_server (sets runtime.strategy); multi-worker
                     strategies read the cluster from TF_CONFIG
  --num_cpu_devices  split the CPU into N logical devices (try `mirrored`
                     without GPUs)
  --devices          mirrored: the devices to use, e.g. /gpu:0,/gpu:1
  --in_process_cluster  parameter_server on one machine: WORKERS,PS servers
                     started inside this process (no TF_CONFIG needed)
  --data_service     grpc://HOST:PORT of a tf.data service dispatcher whose
                     workers read the training input (sets data.service;
                     default and mirrored strategies)

Every flag and override is validated before any data is read or generated.
See the README section "Scaling out" for multi-GPU hosts and clusters.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from adaftr_tf import choices  # noqa: E402
from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_string("preset", "demo", "Config preset name.")
cli.define_string("model_dir", None, "Output directory of the run.")
cli.define_string("data_dir", None, "Data directory (see module docstring).")
cli.define_multi_string("override", [], "Config override key=value.")
cli.define_integer("verbose", 1, "Keras fit verbosity (0, 1 or 2).")
cli.define_enum("strategy", None, list(choices.options(choices.Strategy)),
                "tf.distribute strategy (default: the config's "
                "runtime.strategy).")
cli.define_string("data_service", None,
                  "grpc://HOST:PORT of a tf.data service dispatcher that "
                  "reads the training input (default: the config's "
                  "data.service).")
cli.define_integer("num_cpu_devices", 0,
                   "Split the host CPU into N logical devices (0: leave it).")
cli.define_string("devices", None,
                  "mirrored only: comma-separated device names.")
cli.define_string("in_process_cluster", None,
                  "parameter_server only: 'WORKERS,PS' in-process servers.")


def config_from_flags():
  """The validated config named by --preset, --override, --strategy and
  --data_service."""
  extra = [f"runtime.strategy={FLAGS.strategy}"] if FLAGS.strategy else []
  if FLAGS.data_service is not None:
    extra.append(f"data.service={FLAGS.data_service}")
  return cli.config_from_flags(FLAGS.preset, FLAGS.override + extra)


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


def make_strategy(config):
  """Devices first, then the strategy: both before any other TF work."""
  from pipelines.training import cluster
  from pipelines.training import distribute
  r = config.runtime
  if FLAGS.num_cpu_devices:
    distribute.configure_cpu_devices(FLAGS.num_cpu_devices)
  resolver = None
  if FLAGS.in_process_cluster:
    resolver = cluster.start_in_process_cluster(
        *_cluster_sizes(FLAGS.in_process_cluster, r.strategy))
  devices = [d for d in (FLAGS.devices or "").split(",") if d.strip()]
  return distribute.make_strategy(r.strategy, devices=devices or None,
                                  cluster_resolver=resolver,
                                  ps_min_shard_bytes=r.ps_min_shard_bytes)


def main(argv):
  cli.begin_job(argv, required=("model_dir",))
  config = config_from_flags()
  from pipelines.training import cluster
  if cluster.serve_forever_if_server(config.runtime.strategy):
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
  objective = result["model"].objective
  title = lambda name: name.upper() if objective.kind == "funnel" else name
  aucs = ", ".join(f"{title(r.name)} AUC {valid[r.name + '_auc']:.4f}"
                   for r in objective.reported)
  print(f"best epoch {valid['best_epoch']}: valid {aucs}; global step "
        f"{result['global_step']}; model dir {FLAGS.model_dir}")


def run():
  """Console script `adaftr-train`."""
  cli.run(main)


if __name__ == "__main__":
  run()
