"""The console: the page at ``/console`` and its files at ``/console/{name}``, served by this app.

These are static files, not API operations, so they have no OpenAPI entry (the coverage test exempts
them by name). The page reaches everything else through the public JSON API with relative URLs, which is
why it works both at ``/console`` locally and under an API Gateway stage prefix (``/api/console``).
"""

from __future__ import annotations

from pathlib import Path

from chalice import Blueprint, NotFoundError, Response

blueprint = Blueprint(__name__)

FILES = Path(__file__).resolve().parents[2] / "console"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ROUTES = ("/console", "/console/{name}")
"""The console's own routes (tests/integration/test_openapi.py leaves them out of the API's document)."""


def _serve(name: str) -> Response:
    """A file of the console folder by its bare name (read at each request: they are few and small, and a
    console edit shows at the next reload under ``make run``)."""
    path = FILES / name
    if "/" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        raise NotFoundError("The console has no such file.")
    headers = {"Content-Type": TYPES[path.suffix], **SECURITY_HEADERS}
    return Response(body=path.read_text(encoding="utf-8"), status_code=200, headers=headers)


@blueprint.route(ROUTES[0], methods=["GET", "HEAD"])
def console_page() -> Response:
    return _serve("index.html")


@blueprint.route(ROUTES[1], methods=["GET", "HEAD"])
def console_file(name: str) -> Response:
    return _serve(name)
