"""tf.distribute strategies, logical CPU devices, batch layout and the chief.

Strategies (`--strategy`, `runtime.strategy`):
  default                one device (TensorFlow's default strategy).
  mirrored               synchronous data parallelism over the local devices:
                         every GPU, else every logical CPU
                         (`--num_cpu_devices`), or the devices named.
  multi_worker_mirrored  synchronous, one process per host; the cluster and
                         this process's task come from `TF_CONFIG`.
  parameter_server       asynchronous: this process is the coordinator
                         (`TF_CONFIG` task `chief`); `worker` and `ps` tasks
                         run `cluster.serve_forever_if_server`. Variables above
                         `runtime.ps_min_shard_bytes` (the embedding table) are
                         sharded across the parameter servers.

Only the chief writes the model directory; the others write what a collective
save forces them to write into a temporary directory (`scratch_dir`).
"""

from __future__ import annotations

import dataclasses
import tempfile

import tensorflow as tf

from adaftr_tf import choices
from pipelines.training import cluster
from pipelines.data import records

PS = cluster.PS
MWMS = "multi_worker_mirrored"


def configure_cpu_devices(num: int) -> list[str]:
  """Splits the host CPU into `num` logical devices; returns their names.

  Must run before TensorFlow initialises its devices (before any op).

  Raises:
    ValueError: `num` < 1, or TensorFlow already initialised with another
      number of logical CPU devices.
  """
  if num < 1:
    raise ValueError(f"--num_cpu_devices={num} must be >= 1")
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num)])
  except RuntimeError:
    have = tf.config.list_logical_devices("CPU")
    if len(have) != num:
      raise ValueError(
          f"--num_cpu_devices={num}: TensorFlow is already initialised with "
          f"{len(have)} logical CPU device(s); set it before any TensorFlow "
          "op runs (first thing in the process)") from None
  return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(name: str, devices: list[str] | None = None,
                  cluster_resolver=None,
                  ps_min_shard_bytes: int = 256 << 10
                  ) -> tf.distribute.Strategy:
  """Creates the named strategy; create it before other TensorFlow work.

  Args:
    name: one of `choices.Strategy`.
    devices: `mirrored` only: device names (default: all GPUs, else all
      logical CPUs).
    cluster_resolver: multi-worker strategies: overrides `TF_CONFIG` (e.g. an
      in-process cluster from `cluster.start_in_process_cluster`).
    ps_min_shard_bytes: `parameter_server` only: MinSizePartitioner size.

  Raises:
    ValueError: an unknown name, a device that does not exist, or a missing
      or incomplete cluster description.
  """
  choices.check("strategy", name, choices.Strategy)
  if devices and name != "mirrored":
    raise ValueError(f"--devices is only for --strategy=mirrored, not {name}")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(_local_devices(devices))
  if name == MWMS:
    resolver = cluster_resolver or cluster.resolver_from_tf_config(
        name, ("worker",))
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
  resolver = cluster_resolver or cluster.resolver_from_tf_config(
      name, ("worker", "ps"))
  if resolver.task_type not in (None, "chief"):
    raise ValueError(f"--strategy={PS}: this process is task "
                     f"{resolver.task_type}:{resolver.task_id}; only the "
                     "chief (coordinator) trains, worker and ps tasks serve")
  num_ps = len(resolver.cluster_spec().as_dict().get("ps", []))
  partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
      min_shard_bytes=ps_min_shard_bytes, max_shards=num_ps)
  return tf.distribute.ParameterServerStrategy(
      resolver, variable_partitioner=partitioner)


def _local_devices(devices: list[str] | None) -> list[str]:
  gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  if not devices:
    return gpus or cpus
  known = {_canonical(d): d for d in gpus + cpus}
  unknown = [d for d in devices if _canonical(d) not in known]
  if unknown:
    raise ValueError(f"--devices {unknown} not found; this host has "
                     f"{gpus + cpus}")
  return [known[_canonical(d)] for d in devices]


def _canonical(device: str) -> str:
  spec = tf.DeviceSpec.from_string(device)
  return f"{(spec.device_type or '').upper()}:{spec.device_index or 0}"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the model directory."""
  if isinstance(strategy, tf.distribute.ParameterServerStrategy):
    return True  # the coordinator
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  if resolver.task_type == "chief":
    return True
  jobs = resolver.cluster_spec().as_dict()
  return (resolver.task_type == "worker" and resolver.task_id == 0
          and "chief" not in jobs)


def task_name(strategy: tf.distribute.Strategy) -> str:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or resolver.task_type is None:
    return "local"
  return f"{resolver.task_type}:{resolver.task_id}"


def scratch_dir(strategy: tf.distribute.Strategy) -> str:
  """A fresh local temporary directory for a non-chief's forced writes."""
  task = task_name(strategy).replace(":", "")
  return tempfile.mkdtemp(prefix=f"adaftr-{task}-")


@dataclasses.dataclass(frozen=True)
class Layout:
  """How a strategy splits the batches (all counts are per global step).

  Attributes:
    strategy: the strategy's name (one of `choices.Strategy`).
    replicas: replicas in sync (1 under parameter_server: workers step
      asynchronously, each on a whole `batch_size` batch).
    pipelines: input pipelines (one per worker process).
    workers: worker processes that train.
    global_batch, per_replica_batch: training batch sizes.
    eval_global_batch, eval_per_replica_batch: evaluation batch sizes.
  """

  strategy: str
  replicas: int
  pipelines: int
  workers: int
  global_batch: int
  per_replica_batch: int
  eval_global_batch: int
  eval_per_replica_batch: int

  def describe(self) -> str:
    if self.strategy == PS:
      return (f"strategy {PS}: {self.workers} workers step asynchronously, "
              f"each on a batch of {self.global_batch} (in-batch negatives "
              f"per worker batch); eval batch {self.eval_global_batch}")
    return (f"strategy {self.strategy}: {self.replicas} replica(s) in sync "
            f"on {self.workers} worker(s); global batch {self.global_batch} "
            f"= {self.replicas} x per-replica batch {self.per_replica_batch}; "
            f"eval {self.eval_global_batch} = {self.replicas} x "
            f"{self.eval_per_replica_batch}")


def _jobs(strategy: tf.distribute.Strategy) -> dict:
  """The strategy's cluster as {job: [addresses]} ({} without a cluster)."""
  # ParameterServerStrategy keeps its resolver privately.
  resolver = (getattr(strategy, "cluster_resolver", None)
              or getattr(strategy, "_cluster_resolver", None))
  return resolver.cluster_spec().as_dict() if resolver else {}


def strategy_name(strategy: tf.distribute.Strategy) -> str:
  """The `choices.Strategy` name of a strategy object."""
  if isinstance(strategy, tf.distribute.ParameterServerStrategy):
    return PS
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return MWMS
  if isinstance(strategy, tf.distribute.MirroredStrategy):
    return "mirrored"
  if not tf.distribute.has_strategy() and (
      strategy is tf.distribute.get_strategy()):
    return "default"
  raise ValueError(f"unsupported strategy {type(strategy).__name__}; use one "
                   f"of {choices.options(choices.Strategy)}")


def make_layout(name: str, replicas: int, workers: int, batch_size: int,
                eval_batch_size: int) -> Layout:
  """The batch layout of `replicas` in sync over `workers` processes.

  Raises:
    ValueError: a batch that does not split evenly over the replicas.
  """
  if name == PS:
    return Layout(name, 1, workers, workers, batch_size, batch_size,
                  eval_batch_size, eval_batch_size)
  for key, size in (("train.batch_size", batch_size),
                    ("train.eval_batch_size", eval_batch_size)):
    if size % replicas:
      raise ValueError(f"{key}={size} is not divisible by the {replicas} "
                       f"replicas of --strategy={name}; use a multiple of "
                       f"{replicas}")
  return Layout(name, replicas, workers, workers, batch_size,
                batch_size // replicas, eval_batch_size,
                eval_batch_size // replicas)


def layout(strategy: tf.distribute.Strategy, batch_size: int,
           eval_batch_size: int) -> Layout:
  """The batch layout of a strategy object (see `make_layout`)."""
  name = strategy_name(strategy)
  jobs = _jobs(strategy)
  if name == PS:
    return make_layout(name, 1, len(jobs["worker"]), batch_size,
                       eval_batch_size)
  workers = 1
  if name == MWMS:
    workers = len(jobs.get("worker", [])) + len(jobs.get("chief", []))
  return make_layout(name, strategy.num_replicas_in_sync, workers, batch_size,
                     eval_batch_size)


def check_negatives(plan: Layout, config) -> None:
  """In-batch negatives need two instances in the batch the loss sees.

  With `runtime.cross_replica_negatives` (and `in_batch` negatives) the loss
  sees the global batch; otherwise each replica's (parameter_server: each
  worker's) batch.

  Raises:
    ValueError: naming the batch and what to change.
  """
  l = config.loss
  if not config.uses_alignment:
    return
  global_negatives = (config.runtime.cross_replica_negatives
                      and l.negatives == "in_batch"
                      and plan.strategy != PS)
  seen = plan.global_batch if global_negatives else plan.per_replica_batch
  if seen < 2:
    raise ValueError(
        f"train.batch_size={plan.global_batch} gives the contrastive loss "
        f"batches of {seen} instance(s) under --strategy={plan.strategy} "
        f"({plan.replicas} replica(s)); {l.negatives} negatives need at least "
        "2: raise train.batch_size")


def check_shards(plan: Layout, data_dir: str, splits) -> None:
  """Every input pipeline needs its own file: ValueError naming the split."""
  if plan.strategy == PS:
    return  # every parameter-server worker reads every file
  for split in splits:
    files = records.list_shards(data_dir, split)
    if len(files) < plan.pipelines:
      raise ValueError(
          f"split {split!r} in {data_dir} has {len(files)} file(s) but "
          f"--strategy={plan.strategy} runs {plan.pipelines} workers that "
          f"each read their own files; write at least {plan.pipelines} shards "
          "(data.synthetic.num_shards, or the converter's shard count)")
