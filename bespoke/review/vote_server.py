"""The vote page's web server: 127.0.0.1 only, one session, a handful of routes.

It listens on the loopback address alone (a free port unless one is asked for), so nothing off this machine
can reach it; on a rented box, `ssh -L PORT:127.0.0.1:PORT` brings it to your laptop. It also answers only
requests that come from a loopback address and name a loopback host (a web page elsewhere that resolves its
own name to 127.0.0.1 is refused), and every /api call must carry the session's secret, which only the page
it served holds (another site open in the same browser cannot vote or read answers).

Routes: `GET /` the page; `GET /api/next?client=ID` the pair to show; `GET /img/TOKEN/SIDE/PICTURE` its
images; `POST /api/vote`, `/api/mark`, `/api/undo` (JSON bodies). Everything else is 404.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from bespoke.review.vote_page import page_html
from bespoke.review.vote_session import SessionError, VoteSession

HOST = "127.0.0.1"
SECRET_HEADER = "X-Bespoke-Secret"
MAX_BODY = 4096
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def loopback_request(client_ip: str, host_header: str | None) -> bool:
    """True when a request may be answered: it comes from a loopback address and names a loopback host
    (127.0.0.1, localhost or [::1], with any port: `ssh -L 9000:127.0.0.1:PORT` makes it localhost:9000)."""
    try:
        if not ipaddress.ip_address(client_ip.split("%")[0]).is_loopback:
            return False
    except ValueError:
        return False
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
        name = f"[{name}]"
    else:
        name, _, port = host.partition(":")
    return name in LOOPBACK_NAMES and (port == "" or port.isdigit())


class VoteServer(ThreadingHTTPServer):
    """The server of one vote session, bound to 127.0.0.1."""

    daemon_threads = True

    def __init__(self, session: VoteSession, port: int = 0) -> None:
        self.session = session
        self.secret = secrets.token_hex(16)
        super().__init__((HOST, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, and the command while it waits for Ctrl-C)."""
        thread = threading.Thread(target=self.serve_forever, name="bespoke-vote", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: VoteServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 -- the standard library's name
        """Quiet: the terminal shows the command's own lines, not one per image."""

    def _allowed(self) -> bool:
        if loopback_request(self.client_address[0], self.headers.get("Host")):
            return True
        self.close_connection = True
        self._send(HTTPStatus.FORBIDDEN, b"bespoke vote answers only on 127.0.0.1\n", "text/plain")
        return False

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")  # no other site frames the page to catch its keys
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _secret_ok(self) -> bool:
        if secrets.compare_digest(self.headers.get(SECRET_HEADER, ""), self.server.secret):
            return True
        self.close_connection = True
        self._json({"error": "not this page's session"}, HTTPStatus.FORBIDDEN)
        return False

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        if not self._allowed():
            return
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        session = self.server.session
        try:
            if url.path == "/":
                body = page_html(self.server.secret, session.voter).encode("utf-8")
                self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")
            elif url.path == "/api/next":
                if self._secret_ok():
                    client = (parse_qs(url.query).get("client") or [""])[0][:64]
                    self._json(session.next(client or "anonymous"))
            elif len(parts) == 4 and parts[0] == "img":
                self._send(HTTPStatus.OK, session.image(parts[1], parts[2], parts[3]), "image/png")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        except (SessionError, OSError) as exc:
            self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND)

    def _body(self) -> dict:
        length_text = self.headers.get("Content-Length") or "0"
        length = int(length_text) if length_text.isdigit() else -1
        if not 0 < length <= MAX_BODY:
            self.close_connection = True  # the body was not read: the connection cannot carry another request
            raise SessionError(f"a JSON body of at most {MAX_BODY} bytes")
        try:
            data = json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SessionError("not JSON") from exc
        if not isinstance(data, dict):
            raise SessionError("a JSON object")
        return data

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        if not self._allowed() or not self._secret_ok():
            return
        session = self.server.session
        try:
            body = self._body()
            if self.path == "/api/vote":
                written = session.answer(str(body.get("token")), str(body.get("answer")))
                self._json({"ok": True, "written": written})
            elif self.path == "/api/mark":
                session.mark(str(body.get("token")), str(body.get("side")), str(body.get("mark")),
                             str(body.get("id") or secrets.token_hex(16)))
                self._json({"ok": True})
            elif self.path == "/api/undo":
                undone = session.undo(str(body.get("client") or "anonymous"), str(body.get("id") or ""))
                self._json({"ok": True, "undone": undone})
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        except SessionError as exc:
            self._json({"error": str(exc)}, HTTPStatus.CONFLICT)
