"""``python -m infra.local.moto_server -H … -p … [--state DIR]``: moto's server with this project's fixes,
and, given a state folder, two endpoints the local runtime calls:

- ``POST /_local/state/restore``: load the saved state (after the runtime provisioned the resources),
  then save every SAVE_EVERY seconds while anything changed, so a kill -9 loses only the last seconds.
  A periodic save runs in a forked child, which serialises its copy-on-write view of the backends while
  this process goes on serving (serialising tens of thousands of items here held every request for
  seconds: previews under ``make run`` took 1–6 s every few seconds);
- ``POST /_local/state/save``: save now (the runtime's last step on Ctrl-C).

Both answer JSON counts: ``{"items": …, "messages": …, "mail": …}`` (``null`` when nothing was saved).
It always serves the local mailbox at ``GET /_local/mail`` (``MailboxEndpoints``) and SES's open pixel and
tracked links at ``GET /_local/track/…`` (``TrackingEndpoints``), and publishes SES's delivery events
(infra/local/ses_simulator.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

from infra.local import mailbox, moto_patches, ses_simulator, state, tracking

SAVE_EVERY = float(os.environ.get("SEGMENTS_LOCAL_SAVE_SECONDS") or 5)
_READS = (
    ".Query", ".GetItem", ".BatchGetItem", ".Scan", ".DescribeTable", ".DescribeTimeToLive", ".ListTables",
    ".ReceiveMessage", ".GetQueueUrl", ".GetQueueAttributes", ".ListQueues",
)  # fmt: skip
"""Requests that change nothing worth saving (the dispatcher's long polls above all)."""


class StateKeeper:
    """WSGI middleware: the two state endpoints, and a note of every request that may change something."""

    def __init__(self, app: Any, directory: Path) -> None:
        self.app = app
        self.directory = directory
        self.changed = threading.Event()
        self._saving = threading.Lock()
        self._saver: threading.Thread | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/_local/state/restore":
            return self._answer(start_response, self._restore())
        if path == "/_local/state/save":
            return self._answer(start_response, self._save())
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if environ.get("REQUEST_METHOD") != "GET" and not target.endswith(_READS):
            self.changed.set()
        return self.app(environ, start_response)

    def _answer(self, start_response: Any, body: Any) -> list[bytes]:
        return _json(start_response, "200 OK", body)

    def _restore(self) -> dict[str, int] | None:
        restored = state.restore(self.directory)
        if self._saver is None:
            self._saver = threading.Thread(target=self._save_while_running, name="state-saver", daemon=True)
            self._saver.start()
        return restored

    def _save(self) -> dict[str, int]:
        with self._saving:
            self.changed.clear()
            return state.save(self.directory)

    def _save_while_running(self) -> None:
        while True:
            time.sleep(SAVE_EVERY)
            if not self.changed.is_set():
                continue
            if hasattr(os, "fork"):
                self._save_in_child()
            else:
                self._save()

    def _save_in_child(self) -> None:
        with self._saving:
            self.changed.clear()
            with moto_patches._WRITE_LOCK:  # the child's copy is taken with no write half done
                child = os.fork()
            if child == 0:
                code = 1
                try:
                    state.save(self.directory)
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(child, 0)
            if status != 0:
                self.changed.set()  # not saved: the next round tries again


class MailboxEndpoints:
    """WSGI middleware: the local mailbox (infra/local/mailbox.py) as JSON, one tenant at a time."""

    PREFIX = "/_local/mail"

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path != self.PREFIX and not path.startswith(self.PREFIX + "/"):
            return self.app(environ, start_response)
        query = {name: values[0] for name, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
        tenant_id = query.get("tenant_id", "")
        if path == self.PREFIX:
            before = int(query["before"]) if query.get("before", "").isdigit() else None
            limit = min(int(query["limit"]), 500) if query.get("limit", "").isdigit() else 50
            return _json(start_response, "200 OK", {"items": mailbox.newest(tenant_id, limit, before)})
        found = mailbox.one(tenant_id, path[len(self.PREFIX) + 1 :])
        return _json(start_response, "404 Not Found" if found is None else "200 OK", found or {})


class TrackingEndpoints:
    """WSGI middleware: SES's open pixel and tracked links (infra/local/tracking.py). A pixel answers a GIF and a
    link redirects to where the mail pointed, each after publishing its SES event; anything else is a 404."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(tracking.PATH):
            return self.app(environ, start_response)
        address = environ.get("HTTP_X_FORWARDED_FOR") or environ.get("REMOTE_ADDR") or "127.0.0.1"
        found = tracking.followed(path, environ.get("HTTP_USER_AGENT", ""), address.split(",")[0].strip())
        if found is None:
            return _json(start_response, "404 Not Found", {"error": {"code": "not_found", "message": "No such link."}})
        ses_simulator.publish(found.event, found.account, found.region)
        never_cached = ("Cache-Control", "no-store")
        if found.redirect is not None:
            start_response("302 Found", [("Location", found.redirect), never_cached, ("Content-Length", "0")])
            return [b""]
        start_response("200 OK", [("Content-Type", "image/gif"), never_cached])
        return [tracking.PIXEL]


def _json(start_response: Any, status: str, body: Any) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--state", type=Path, default=None, help="folder of the saved local state")
    arguments = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(arguments.port))  # as moto's own main: queue URLs name the port
    moto_patches.apply()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request, which nobody reads, costs the server
    ses_simulator.publish_deliveries = True  # as SES: every delivered mail has its Delivery event
    app: Any = TrackingEndpoints(MailboxEndpoints(DomainDispatcherApplication(create_backend_app)))
    if arguments.state is not None:
        app = StateKeeper(app, arguments.state)
    run_simple(arguments.host, arguments.port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
