"""Clusters: TF_CONFIG, parameter-server tasks, in-process clusters, ports.

`TF_CONFIG` (JSON in the environment) names the cluster and this process's
task, e.g. for the second of two multi-worker-mirrored workers:

  {"cluster": {"worker": ["host1:12345", "host2:12345"]},
   "task": {"type": "worker", "index": 1}}

Under `parameter_server` the cluster also has `chief` (the coordinator, which
runs the training job) and `ps`; `worker` and `ps` tasks run
`serve_forever_if_server`. The README section "Scaling out" has an example per role.
"""

from __future__ import annotations

import json
import os
import socket

import tensorflow as tf

PS = "parameter_server"
_SERVER_ROLES = ("worker", "ps")


def tf_config() -> dict:
  """The parsed `TF_CONFIG` environment variable ({} when unset)."""
  text = os.environ.get("TF_CONFIG", "").strip()
  if not text:
    return {}
  try:
    parsed = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(
        f"TF_CONFIG is not valid JSON ({e}): {text[:200]}") from None
  if not isinstance(parsed, dict) or "cluster" not in parsed:
    raise ValueError('TF_CONFIG must look like {"cluster": {"worker": '
                     '["host:port", ...]}, "task": {"type": "worker", '
                     f'"index": 0}}}}; got {text[:200]}')
  return parsed


def resolver_from_tf_config(strategy: str, required_jobs: tuple[str, ...]):
  config = tf_config()
  cluster = config.get("cluster", {})
  missing = [job for job in required_jobs if not cluster.get(job)]
  if missing:
    raise ValueError(
        f"--strategy={strategy} needs TF_CONFIG with the job(s) {missing} in "
        f"its cluster; TF_CONFIG has jobs {sorted(cluster)} (see "
        "the README section 'Scaling out' for an example per role)")
  task = config.get("task", {})
  if "type" not in task or "index" not in task:
    raise ValueError(f"--strategy={strategy}: TF_CONFIG needs this process's "
                     'task, e.g. "task": {"type": "worker", "index": 0}')
  return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def serve_forever_if_server(strategy: str) -> bool:
  """Under `parameter_server`, runs this process's worker/ps server forever.

  Returns False (without serving) for any other strategy or role.
  """
  if strategy != PS:
    return False
  task = tf_config().get("task", {})
  if task.get("type") not in _SERVER_ROLES:
    return False
  resolver = resolver_from_tf_config(strategy, ("worker", "ps"))
  server = tf.distribute.Server(
      resolver.cluster_spec(), job_name=resolver.task_type,
      task_index=resolver.task_id, protocol=resolver.rpc_layer or "grpc",
      start=True)
  print(f"{resolver.task_type}:{resolver.task_id} serving at "
        f"{server.target}", flush=True)
  server.join()
  return True


def free_ports(num: int) -> list[int]:
  """`num` distinct TCP ports that were free on localhost a moment ago."""
  sockets = [socket.socket() for _ in range(num)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def start_in_process_cluster(num_workers: int, num_ps: int):
  """Starts worker and ps servers in this process; returns their resolver.

  For trying `parameter_server` on one machine (and in tests). The calling
  process is the coordinator.
  """
  if num_workers < 1 or num_ps < 1:
    raise ValueError(f"an in-process cluster needs >= 1 worker and >= 1 ps, "
                     f"got {num_workers} workers and {num_ps} ps")
  ports = free_ports(num_workers + num_ps)
  spec = {"worker": [f"localhost:{p}" for p in ports[:num_workers]],
          "ps": [f"localhost:{p}" for p in ports[num_workers:]]}
  cluster = tf.train.ClusterSpec(spec)
  config = tf.compat.v1.ConfigProto()
  # Servers sharing one process deadlock on a small host unless each can run
  # an op per worker at once.
  config.inter_op_parallelism_threads = max(os.cpu_count() or 1,
                                            num_workers + 1)
  for job, addresses in spec.items():
    for index in range(len(addresses)):
      tf.distribute.Server(cluster, job_name=job, task_index=index,
                           config=config, protocol="grpc", start=True)
  return tf.distribute.cluster_resolver.SimpleClusterResolver(
      cluster, rpc_layer="grpc")
