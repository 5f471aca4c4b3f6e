"""An in-process tf.data service: a dispatcher and workers on free ports."""

from __future__ import annotations

import contextlib

import tensorflow as tf


@contextlib.contextmanager
def local_service(workers: int = 2):
  """Yields the dispatcher's `grpc://localhost:PORT`; stops every server.

  Port 0 lets the dispatcher and each worker pick a free port.
  """
  service = tf.data.experimental.service
  dispatcher = service.DispatchServer(service.DispatcherConfig(port=0))
  address = dispatcher.target.split("://")[1]
  servers = [service.WorkerServer(service.WorkerConfig(
      dispatcher_address=address)) for _ in range(workers)]
  try:
    yield dispatcher.target
  finally:
    for server in servers:
      server.stop()
    dispatcher.stop()
