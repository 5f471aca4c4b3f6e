"""Serve a tf.data service dispatcher or worker for `--data_service`.

  python -m pipelines.data_service --port=5050                   # dispatcher
  python -m pipelines.data_service --port=5051 --dispatcher=HOST:5050 \
      [--worker_host=THIS_HOST]                                  # a worker

  --port         the port to listen on (0: any free port, printed)
  --dispatcher   start a worker of the dispatcher at grpc://HOST:PORT or
                 HOST:PORT (without it: start the dispatcher)
  --worker_host  the name or IP trainers reach this worker at (default:
                 this host's fully qualified name)

Serves until stopped. The servers run TensorFlow's own tf.data service
(`tf.data.experimental.service`); a training job sends them its input
pipeline (README "Scaling out", tf.data service).
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from pipelines import cli  # noqa: E402

FLAGS = flags.FLAGS
cli.define_integer("port", None, "Port to listen on (0: any free port).")
cli.define_string("dispatcher", None,
                  "Start a worker of this dispatcher (grpc://HOST:PORT or "
                  "HOST:PORT); without it, start the dispatcher.")
cli.define_string("worker_host", None,
                  "Worker: the name or IP trainers reach it at (default: "
                  "this host's fully qualified name).")


def start(port: int, dispatcher: str | None = None,
          worker_host: str | None = None):
  """Starts a dispatcher (no `dispatcher`) or a worker of `dispatcher`.

  Returns:
    (server, what it serves as, e.g. "dispatcher at grpc://host:5050").

  Raises:
    ValueError: a bad port or address.
  """
  import socket
  import tensorflow as tf
  from pipelines.data import service
  if port is None or not 0 <= port < 65536:
    raise app.UsageError(f"--port={port} must lie in [0, 65535]")
  lib = tf.data.experimental.service
  if dispatcher is None:
    if worker_host is not None:
      raise app.UsageError("--worker_host needs --dispatcher")
    server = lib.DispatchServer(lib.DispatcherConfig(port=port))
    port = server.target.rsplit(":", 1)[1]
    return server, f"dispatcher at grpc://{socket.getfqdn()}:{port}"
  target = service.address(dispatcher)
  # `%port%`: the port the worker binds (the one chosen, with port 0).
  reach = f"{worker_host or socket.getfqdn()}:%port%"
  service.address(reach.replace("%port%", "1"))  # a bad host, named
  server = lib.WorkerServer(lib.WorkerConfig(
      dispatcher_address=target[len("grpc://"):], worker_address=reach,
      port=port))
  return server, f"worker of {target}"


def main(argv):
  cli.begin_job(argv, required=("port",))
  server, what = start(FLAGS.port, FLAGS.dispatcher, FLAGS.worker_host)
  print(f"tf.data service {what}: serving until stopped", flush=True)
  server.join()


def run():
  """Console script `adaftr-data-service`."""
  cli.run(main)


if __name__ == "__main__":
  run()
