"""Prometheus metrics that answer for every process of `caretime serve --processes N`.

A scrape of `/metrics` reaches whichever process the kernel gives the connection to; on its
own, each would report its own counters, and the scraper would see them jump between
processes' values. So the parent makes a fresh directory and names it in
PROMETHEUS_MULTIPROC_DIR before it starts the children: prometheus_client then keeps each
child's values in files there, and `/metrics` in any child sums them (gauges by their
`multiprocess_mode`). One process alone keeps the ordinary in-memory registry.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

SHARED_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def registry() -> CollectorRegistry:
    """What `/metrics` reports: this process's, or every serving process's summed."""
    directory = os.environ.get(SHARED_DIRECTORY)
    if not directory:
        return REGISTRY
    shared = CollectorRegistry()
    MultiProcessCollector(shared, path=directory)  # type: ignore[no-untyped-call]
    return shared


@contextmanager
def shared_between_processes() -> Iterator[None]:
    """Processes started inside this block share one fresh metrics directory; it is removed
    after (values of an earlier run must not be summed into this one)."""
    previous = os.environ.get(SHARED_DIRECTORY)
    with tempfile.TemporaryDirectory(prefix="caretime-metrics-") as directory:
        os.environ[SHARED_DIRECTORY] = directory
        try:
            yield
        finally:
            if previous is None:
                del os.environ[SHARED_DIRECTORY]
            else:
                os.environ[SHARED_DIRECTORY] = previous
