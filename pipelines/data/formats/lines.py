"""Streaming line input with file line numbers, and a rows/bytes progress bar.

Files are read as bytes a batch of lines at a time, so memory stays bounded
by the batch whatever the file size; line numbers count every physical line
(header included, 1-based), as an editor shows them. A gzip file (known by
its magic bytes, whatever its name) is decompressed on the fly: its lines
are the decompressed lines, its progress the compressed bytes read.

Raw input files are local and read with Python's `open` (its buffered line
iteration is much faster than `tf.io.gfile.GFile`'s); copy remote raw files
first. Everything the converter writes goes through `tf.io.gfile`.
"""

from __future__ import annotations

import contextlib
import gzip
import sys
import time
from typing import Iterator

BATCH_LINES = 4096
_READ_CHUNK = 1 << 22
GZIP_MAGIC = b"\x1f\x8b"


class Progress:
  """One self-overwriting stderr line: `label: rows, MB read / MB total`.

  Args:
    label: what is being read (e.g. "pass 1/2 statistics").
    total_bytes: bytes to read in all (for the percentage).
    enabled: print at all (tests turn it off).
    interval: seconds between updates.
  """

  def __init__(self, label: str, total_bytes: int, enabled: bool = True,
               interval: float = 0.5, stream=None):
    self.label, self.total = label, max(total_bytes, 1)
    self.enabled, self.interval = enabled, interval
    self.stream = stream or sys.stderr
    self.rows = self.bytes = 0
    self._last = 0.0
    self._start = time.time()

  def update(self, rows: int = 0, nbytes: int = 0) -> None:
    self.rows += rows
    self.bytes += nbytes
    now = time.time()
    if self.enabled and now - self._last >= self.interval:
      self._last = now
      self._print("\r")

  def _print(self, prefix: str, end: str = "") -> None:
    elapsed = max(time.time() - self._start, 1e-9)
    self.stream.write(
        f"{prefix}{self.label}: {self.rows:,} rows, "
        f"{self.bytes / 1e6:,.1f}/{self.total / 1e6:,.1f} MB "
        f"({100.0 * self.bytes / self.total:.0f}%), "
        f"{self.bytes / 1e6 / elapsed:.1f} MB/s{end}")
    self.stream.flush()

  def close(self) -> None:
    if self.enabled:
      self._print("\r", "\n")


@contextlib.contextmanager
def open_input(path: str):
  """Opens a local input file for reading bytes, gunzipped if gzip.

  Yields:
    (stream, raw): `stream` reads the (decompressed) content; `raw` is the
    file on disk, whose `tell()` counts the bytes read from it so far.
  """
  with open(path, "rb") as raw:
    compressed = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    raw.seek(0)
    if not compressed:
      yield raw, raw
      return
    with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
      yield stream, raw


def count_lines(path: str) -> int:
  """Physical lines of a file (a last line without newline counts)."""
  count, last = 0, b"\n"
  with open_input(path) as (f, _):
    while chunk := f.read(_READ_CHUNK):
      count += chunk.count(b"\n")
      last = chunk[-1:]
  return count + (last != b"\n")


def read_batches(path: str, progress: Progress | None, skip_lines: int = 0,
                 batch_lines: int = BATCH_LINES
                 ) -> Iterator[tuple[int, list[bytes]]]:
  """Yields (line number of the first line, raw lines without EOL).

  Args:
    path: the file.
    progress: counts bytes (rows are counted by the caller).
    skip_lines: leading lines not yielded (a header).
    batch_lines: lines per batch.
  """
  batch: list[bytes] = []
  first = skip_lines + 1
  with open_input(path) as (f, raw):
    for _ in range(skip_lines):
      f.readline()
    done = 0
    for line in f:
      batch.append(line.rstrip(b"\r\n"))
      if len(batch) == batch_lines:
        done = _count_read(progress, raw, done)
        yield first, batch
        first += len(batch)
        batch = []
    _count_read(progress, raw, done)
  if batch:
    yield first, batch


def _count_read(progress: Progress | None, raw, done: int) -> int:
  """Adds the bytes of `raw` read since position `done` to `progress`;
  returns the position."""
  position = raw.tell()
  if progress is not None:
    progress.bytes += position - done
  return position


def read_header(path: str) -> str:
  """The first line of a file, decoded, without EOL."""
  with open_input(path) as (f, _):
    return f.readline().rstrip(b"\r\n").decode("utf-8", errors="replace")
