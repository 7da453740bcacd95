"""``make run``: the whole service on this machine.

Starts moto in server mode on loopback (``MOTO_PORT``, default 5000), creates the
declared resources, serves the API on 127.0.0.1:``PORT`` (default 8000), polls
every subscribed SQS queue and fires every schedule, like Lambda would.
Ctrl-C (or SIGTERM) stops everything; moto is bound to this process's life.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
LOCAL_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SEGMENTS_STAGE": "local",
}


def _die_with_parent() -> None:
    """Run in the moto child before exec: Linux sends it SIGTERM if we die."""
    with contextlib.suppress(OSError):  # not Linux: Ctrl-C still stops moto through the finally below
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def start_moto(port: int) -> subprocess.Popen:
    if not _port_free(port):
        raise SystemExit(f"port {port} is in use: stop what runs there or set MOTO_PORT")
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("moto server exited during start-up")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("moto server did not start within 30 s")


def main() -> None:
    moto_port = int(os.environ.get("MOTO_PORT", "5000"))
    api_port = int(os.environ.get("PORT", "8000"))
    for name, value in LOCAL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto_port}"
    if not _port_free(api_port):
        raise SystemExit(f"port {api_port} is in use: stop what runs there or set PORT")

    moto = start_moto(moto_port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    parts: list = []
    try:
        # Imported only now: boto3 and PynamoDB clients must see the endpoint above.
        from chalice.cli.factory import CLIFactory
        from chalice.local import LocalChalice, LocalDevServer

        from chalicelib.config import get_config
        from infra.local.dispatcher import Dispatcher
        from infra.local.gateway import EnvelopeRequestHandler
        from infra.local.provision import provision
        from infra.local.scheduler import Scheduler

        sys.path.insert(0, str(PROJECT_DIR))
        from app import app

        provision()
        config = CLIFactory(str(PROJECT_DIR)).create_config_obj(chalice_stage_name="local")
        app.__class__ = type("ThreadSafeApp", (LocalChalice, app.__class__), {})
        server = LocalDevServer(app, config, "127.0.0.1", api_port, handler_cls=EnvelopeRequestHandler)
        threading.Thread(target=server.server.serve_forever, name="http", daemon=True).start()
        parts.append(server.server.shutdown)
        dispatcher = Dispatcher(app)
        dispatcher.start(pollers_per_queue=int(os.environ.get("SEGMENTS_LOCAL_POLLERS", "2")))
        parts.append(dispatcher.stop)
        scheduler = Scheduler(app, os.environ["AWS_REGION"])
        scheduler.start()
        parts.append(scheduler.stop)

        print(
            f"Segments is running.\n"
            f"  API:           http://127.0.0.1:{api_port}  (OpenAPI at /openapi.json)\n"
            f"  moto:          http://127.0.0.1:{moto_port}  (sent mail: /moto-api/data.json)\n"
            f"  operator key:  {get_config().operator_key}\n"
            f"  queues polled: {', '.join(s.queue_name for s in dispatcher.subscriptions) or 'none'}\n"
            f"  schedules:     {', '.join(h.name + ' ' + h.expression for h in scheduler.handlers) or 'none'}\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while not stopping.wait(0.5):
            if moto.poll() is not None:
                print("moto server exited; stopping", file=sys.stderr, flush=True)
                break
    finally:
        for stop in reversed(parts):
            stop()
        moto.terminate()
        try:
            moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto.kill()
        print("Segments stopped.", flush=True)


if __name__ == "__main__":
    main()
