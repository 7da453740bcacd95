"""Start the real local runtime (``python -m infra.local.runtime``) as a subprocess."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
STOP_SECONDS = 60
"""How long Ctrl-C may take: it finishes the messages in flight and saves the state, a second or two on its own
and more beside a busy test worker on two cores."""


def free_port() -> int:
    """A free port below the kernel's ephemeral range. A port that binding to 0 hands out is an ephemeral one,
    which the runtime's own outgoing connections (to moto, while it provisions) may take as their source port
    before it binds its API there: one run of the suite failed with "Address already in use" that way."""
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    lowest = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    while True:
        port = random.randrange(20000, lowest)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another
            return port


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class LocalRuntime:
    def __init__(self, extra_env: dict[str, str] | None = None, state: Path | None = None) -> None:
        """``state``: the folder the runtime keeps its state in (a new empty one unless given)."""
        self.api_port, self.moto_port = free_port(), free_port()
        self.state = state or Path(tempfile.mkdtemp(prefix="segments-state-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "RESET"}  # ours to set
        env.update(
            {"PORT": str(self.api_port), "MOTO_PORT": str(self.moto_port), "SEGMENTS_LOCAL_STATE": str(self.state)}
        )
        env.update(extra_env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.local.runtime"],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.banner: list[str] = []
        self.logged: list[str] = []
        self._reader: threading.Thread | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError("runtime exited during start-up:\n" + "".join(self.banner))
            self.banner.append(line)
            if line.startswith("Press Ctrl-C"):
                self._reader = threading.Thread(target=self._keep_reading, name="runtime-output", daemon=True)
                self._reader.start()
                return
        self.stop()
        raise RuntimeError("runtime did not start within 60 s")

    def _keep_reading(self) -> None:
        """Read what the runtime prints as it prints it: a full pipe would stop its logging threads."""
        for line in self.process.stdout:
            self.logged.append(line)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def call(self, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base_url + path, method=method)
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, data=data, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def sent_mail(self) -> list[dict[str, Any]]:
        """What moto's SES has sent, as the README shows: ``curl 127.0.0.1:5000/moto-api/data.json``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.moto_port}/moto-api/data.json", timeout=30) as response:
            data = json.loads(response.read())
        return [m for models in data.get("ses", {}).values() for m in models if "raw_data" in m]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()  # -9: its output (below) ends with the step it was stopping at
            code = self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)
        else:
            self.logged.append(self.process.stdout.read() or "")
        self.output = "".join(self.banner) + "".join(self.logged)
        return code
