"""`p2phd edit`'s HTTP API (JSON and PNG) over one `Editor`, and the page that uses it.

The standard library's threading server: the API is a dozen small routes, the editor runs
one request at a time anyway (one lock around the model), and a web framework would be a
dependency for what fits in this file. Requests never name files: label maps are picked
by key from the folders given on the command line, and uploads arrive in the body, so
nothing outside those folders can be read. Errors are one line of JSON with status 400
(bad input) or 404 (no such thing), and the server keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import secrets
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from p2phd.edit.editor import Editor, png_bytes
from p2phd.errors import ConfigError, NotFoundError, P2phdError
from p2phd.jsonfile import SchemaError, parse
from p2phd.limits import MAX_PORT, check_range

MAX_BODY = 32 * 1024 * 1024  # bytes of one request: a 2048x1024 label, instance and photo fit
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/editor.js": ("editor.js", "text/javascript; charset=utf-8"),
    "/editor.css": ("editor.css", "text/css; charset=utf-8"),
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_HEADER = "X-P2phd-Token"  # every POST carries the page's session token
TOKEN_SLOT = b"__P2PHD_TOKEN__"  # where index.html gets it
SAME_SITE = ("same-origin", "none")  # Sec-Fetch-Site values of the page itself and of a user

Query = dict[str, list[str]]
Reply = tuple[str, bytes]  # content type, body
Route = Callable[[Editor, Query, dict[str, Any]], Reply]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class EditServer(ThreadingHTTPServer):
    """Serves the editor page and its API until SIGINT or SIGTERM (`serve_until_signalled`)."""

    daemon_threads = True

    def __init__(self, editor: Editor, host: str = "127.0.0.1", port: int = 0) -> None:
        self.editor, self.lock, self.loopback = editor, threading.Lock(), is_loopback(host)
        check_range(port, "--port", 0, MAX_PORT)  # 0: a free one
        self.token = secrets.token_urlsafe(24)  # this session's; only its own page knows it
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"--host {host} --port {port}: cannot listen ({exc.strerror or exc}); "
                "pick another port, or 0 for a free one"
            ) from None

    def serve_until_signalled(self, poll_interval: float = 0.2) -> int:
        """Serve until SIGINT or SIGTERM and return its number. Both are handled here
        whatever the process inherited: a background job of a shell starts with SIGINT
        ignored, and Python keeps it so, which left the server deaf to Ctrl-C."""
        received: list[int] = []

        def stop(signum: int, frame: Any) -> None:
            if not received:  # shutdown() waits for serve_forever: never in its own thread
                received.append(signum)
                threading.Thread(target=self.shutdown, daemon=True).start()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.serve_forever(poll_interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return received[0] if received else 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is no error worth a traceback; anything else is a bug."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: EditServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the terminal shows the URL and errors, not every request."""

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            self._check_host()
            self._check_origin()
            if method == "POST":
                self._check_post()
            body = self._body() if method == "POST" else {}
            if method == "GET" and url.path in STATIC:
                name, kind = STATIC[url.path]
                page = resources.files("p2phd").joinpath("edit", "static", name).read_bytes()
                self._send(200, kind, page.replace(TOKEN_SLOT, self.server.token.encode()))
                return
            route = ROUTES.get((method, url.path))
            if route is None:
                raise NotFoundError(f"{method} {url.path}: no such page or endpoint")
            with self.server.lock:
                kind, payload = route(self.server.editor, parse_qs(url.query), body)
            self._send(200, kind, payload, attachment=url.path.startswith("/api/download/"))
        except ConnectionError:  # the client went away (closed tab, reload): nothing to answer
            self.close_connection = True
        except NotFoundError as exc:
            self._error(404, str(exc))
        except ForbiddenError as exc:
            self._error(403, str(exc))
        except P2phdError as exc:
            self._error(400, str(exc))
        except Exception as exc:  # a bug: said on the page and the terminal, server lives on
            traceback.print_exc(file=sys.stderr)
            self._error(500, f"internal error ({type(exc).__name__}: {exc}); please report it")

    def _check_host(self) -> None:
        """On loopback, only requests addressed to loopback names (no DNS rebinding)."""
        if not self.server.loopback:
            return
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in LOOPBACK_NAMES:
            raise ConfigError(f"Host {host!r}: this editor answers on 127.0.0.1 only")

    def _check_origin(self) -> None:
        """Cross-site requests are refused: a page of another origin, opened in the user's
        browser, must not drive the editor (CSRF). Browsers say where a request comes from
        in Origin and Sec-Fetch-Site; the page's own requests are same-origin."""
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in SAME_SITE:
            raise ForbiddenError(f"Sec-Fetch-Site {site!r}: the editor answers its own page only")
        origin = self.headers.get("Origin")
        if origin is not None and origin != self._own_origin():
            raise ForbiddenError(f"Origin {origin[:80]!r}: the editor answers its own page only")

    def _own_origin(self) -> str:
        host = self.headers.get("Host") or ""
        return f"http://{host}"

    def _check_post(self) -> None:
        """A change needs JSON (which another origin cannot send without a preflight this
        server never grants) and the session token of the page."""
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            self.close_connection = True
            raise ForbiddenError(f"Content-Type {kind or 'none'!r}: send application/json")
        if not secrets.compare_digest(self.headers.get(TOKEN_HEADER) or "", self.server.token):
            self.close_connection = True
            raise ForbiddenError(f"{TOKEN_HEADER}: missing or wrong; reload the editor's page")

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise ConfigError("a POST needs a Content-Length")
        if int(length) > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot go on
            raise ConfigError(f"request of {int(length)} bytes: uploads are limited to 32 MiB")
        raw = self.rfile.read(int(length))
        try:
            data = parse(raw) if raw else {}
        except SchemaError as exc:
            raise ConfigError(f"the request body is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError("the request body must be a JSON object")
        return data

    def _send(self, status: int, kind: str, payload: bytes, *, attachment: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if attachment:
            name = self.server.editor.downloads().get(self.path.rsplit("/", 1)[-1].split(".")[0])
            self.send_header("Content-Disposition", content_disposition(name or "download"))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str) -> None:
        line = " ".join(message.split())
        self._send(status, "application/json", json.dumps({"error": line}).encode())


class ForbiddenError(P2phdError):
    """A request from somewhere other than the editor's own page (status 403)."""


def content_disposition(name: str) -> str:
    """`attachment` with the file name as RFC 6266 gives it: a plain-ASCII `filename` (no
    control characters, quotes or backslashes: nothing can end the header) and the exact
    name as `filename*`, percent-encoded UTF-8."""
    plain = re.sub(r'[^\x20-\x7e]|["\\]', "_", name)
    exact = quote("".join(c for c in name if c.isprintable()), safe="")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}"


# -- routes: each reads its arguments, calls the editor once, and says what to send --------


def _json(data: Any) -> Reply:
    return "application/json", json.dumps(data).encode()


def _png(array: Any) -> Reply:
    return "image/png", png_bytes(array)


def _int(source: dict[str, Any], name: str) -> int:
    """An integer argument from the query (a list of strings) or the JSON body."""
    value = source.get(name)
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name}: give an integer")
    return value


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"{name}: give a class name or number")
    return str(value)


def _file(body: dict[str, Any], name: str) -> bytes:
    """A file sent as base64 (a data: URL from the page, or plain)."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name}: send the file as base64")
    try:
        return base64.b64decode(value.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: not valid base64") from None


def _upload(e: Editor, q: Query, b: dict[str, Any]) -> Reply:
    for field in ("label_name", "inst_name"):
        if any(not c.isprintable() for c in str(b.get(field, ""))):
            raise ConfigError(f"{field}: a file name with control characters; rename the file")
    inst = _file(b, "inst") if b.get("inst") else None
    return _json(
        e.upload(_file(b, "label"), str(b.get("label_name", "")), inst, str(b.get("inst_name", "")))
    )


def _restyle(e: Editor, q: Query, b: dict[str, Any]) -> Reply:
    cluster = None if b.get("cluster") is None else _int(b, "cluster")
    return _json(e.restyle(_int(b, "id"), cluster))


def _swatches(e: Editor, q: Query, b: dict[str, Any]) -> Reply:
    images = e.swatches(_int(q, "id"))
    urls = ["data:image/png;base64," + base64.b64encode(png_bytes(im)).decode() for im in images]
    return _json({"swatches": urls})


def _command(e: Editor, q: Query, b: dict[str, Any]) -> Reply:
    return _json({"command": e.command(), "files": e.downloads(), "style_map": e.style_map()})


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/info"): lambda e, q, b: _json(e.info()),
    ("GET", "/api/image.png"): lambda e, q, b: _png(e.image()),
    ("GET", "/api/label.png"): lambda e, q, b: _png(e.coloured_label()),
    ("GET", "/api/select"): lambda e, q, b: _json(e.select(_int(q, "x"), _int(q, "y"))),
    ("GET", "/api/object"): lambda e, q, b: _json(e.describe(_int(q, "id"))),
    ("GET", "/api/outline.png"): lambda e, q, b: _png(e.outline(_int(q, "id"))),
    ("GET", "/api/swatches"): _swatches,
    ("GET", "/api/command"): _command,
    ("GET", "/api/download/image.png"): lambda e, q, b: _png(e.image()),
    ("GET", "/api/download/label.png"): lambda e, q, b: ("image/png", e.label_png()),
    ("GET", "/api/download/inst.png"): lambda e, q, b: ("image/png", e.inst_png()),
    ("GET", "/api/download/style.json"): lambda e, q, b: _json(e.style_map()),
    ("POST", "/api/open"): lambda e, q, b: _json(e.open(str(b.get("key", "")))),
    ("POST", "/api/revert"): lambda e, q, b: _json(e.revert()),
    ("POST", "/api/upload"): _upload,
    ("POST", "/api/relabel"): lambda e, q, b: _json(e.relabel(_int(b, "id"), _text(b, "class"))),
    ("POST", "/api/restyle"): _restyle,
    ("POST", "/api/photo-style"): lambda e, q, b: _json(
        e.style_from_photo(_int(b, "id"), _file(b, "photo"), str(b.get("name", "")))
    ),
    ("POST", "/api/paint"): lambda e, q, b: _json(
        e.paint(b.get("points"), b.get("radius"), _text(b, "class"))
    ),
    ("POST", "/api/erase"): lambda e, q, b: _json(e.paint(b.get("points"), b.get("radius"), None)),
    ("POST", "/api/undo"): lambda e, q, b: _json(e.undo()),
    ("POST", "/api/redo"): lambda e, q, b: _json(e.redo()),
}
