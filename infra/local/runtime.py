"""``make run``: the whole service on this machine.

Starts moto in server mode on loopback (``MOTO_PORT``, default 5000), creates the
declared resources, restores the state saved by the last run (``SEGMENTS_LOCAL_STATE``,
default ``.local-state/``; ``RESET=1`` starts empty), serves the API on
127.0.0.1:``PORT`` (default 8000), polls every subscribed SQS queue and fires every
schedule, like Lambda would. The state is saved every few seconds while anything
changes. Ctrl-C (or SIGTERM) stops accepting requests, lets the messages being handled
finish, saves the state and stops everything; moto is bound to this process's life.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
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
    "POWERTOOLS_METRICS_DISABLED": "true",  # CloudWatch embedded metrics mean nothing on a laptop's console
}


def _die_with_parent() -> None:
    """Run in the moto child before exec: Linux sends it SIGTERM if we die."""
    with contextlib.suppress(OSError):  # not Linux: Ctrl-C still stops moto through the finally below
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def start_moto(port: int, state: Path) -> subprocess.Popen:
    if not _port_free(port):
        raise SystemExit(f"port {port} is in use: stop what runs there or set MOTO_PORT")
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.moto_server", "-H", "127.0.0.1", "-p", str(port), "--state", str(state)],
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


def _state_call(moto_port: int, action: str) -> dict[str, int] | None:
    request = urllib.request.Request(f"http://127.0.0.1:{moto_port}/_local/state/{action}", method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _state_line(directory: Path, restored: dict[str, int] | None) -> str:
    if restored is None:
        return f"starting empty; kept in {directory}/ (saved every few seconds and on Ctrl-C)"
    return (
        f"restored {restored['items']:,} items, {restored['messages']:,} queued messages and "
        f"{restored['mail']:,} sent mails from {directory}/ (make run RESET=1 or make reset starts empty)"
    )


def main() -> None:
    moto_port = int(os.environ.get("MOTO_PORT", "5000"))
    api_port = int(os.environ.get("PORT", "8000"))
    state_directory = Path(os.environ.get("SEGMENTS_LOCAL_STATE") or PROJECT_DIR / ".local-state")
    if os.environ.get("RESET") not in (None, "", "0"):
        shutil.rmtree(state_directory, ignore_errors=True)
    for name, value in LOCAL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto_port}"
    os.environ.setdefault("SEGMENTS_LOCAL_TRACKING_URL", f"http://127.0.0.1:{api_port}")  # SES's tracked links, locally
    if not _port_free(api_port):
        raise SystemExit(f"port {api_port} is in use: stop what runs there or set PORT")

    moto = start_moto(moto_port, state_directory)
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
        restored = _state_call(moto_port, "restore")
        config = CLIFactory(str(PROJECT_DIR)).create_config_obj(chalice_stage_name="local")
        app.__class__ = type("ThreadSafeApp", (LocalChalice, app.__class__), {})
        server = LocalDevServer(app, config, "127.0.0.1", api_port, handler_cls=EnvelopeRequestHandler)
        threading.Thread(target=server.server.serve_forever, name="http", daemon=True).start()
        parts.append(("saving the state", lambda: _state_call(moto_port, "save")))
        dispatcher = Dispatcher(app)
        dispatcher.start(pollers_per_queue=int(os.environ.get("SEGMENTS_LOCAL_POLLERS", "2")))
        parts.append(("finishing the messages in flight", dispatcher.stop))
        scheduler = Scheduler(app, os.environ["AWS_REGION"])
        scheduler.start()
        parts.append(("stopping the schedules", scheduler.stop))
        parts.append(("no longer accepting requests", server.server.shutdown))

        print(
            f"Segments is running.\n"
            f"  API:           http://127.0.0.1:{api_port}  (OpenAPI at /openapi.json)\n"
            f"  console:       http://127.0.0.1:{api_port}/console  (sign in with a tenant's API key)\n"
            f"  moto:          http://127.0.0.1:{moto_port}  (sent mail: /moto-api/data.json)\n"
            f"  operator key:  {get_config().operator_key}\n"
            f"  queues polled: {', '.join(s.queue_name for s in dispatcher.subscriptions) or 'none'}\n"
            f"  schedules:     {', '.join(h.name + ' ' + h.expression for h in scheduler.handlers) or 'none'}\n"
            f"  state:         {_state_line(state_directory, restored)}\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while not stopping.wait(0.5):
            if moto.poll() is not None:
                print("moto server exited; stopping", file=sys.stderr, flush=True)
                break
    finally:
        for step, stop in reversed(parts):  # requests first, then schedules, messages in flight, the state
            print(f"stopping: {step}", flush=True)  # a step that takes long says which one it is
            try:
                stop()
            except Exception as problem:  # moto gone, say: the other steps still run
                print(f"while {step}: {problem}", file=sys.stderr, flush=True)
        moto.terminate()
        try:
            moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto.kill()
        print("Segments stopped.", flush=True)


if __name__ == "__main__":
    main()
