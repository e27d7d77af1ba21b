"""The vote page's server: 127.0.0.1 only, loopback hosts only, the session's secret on every API call."""

from __future__ import annotations

import http.client
import json
import re
import socket

import pytest
from vote_fixtures import processed_run

from bespoke.review.vote_server import SECRET_HEADER, VoteServer, loopback_request
from bespoke.review.votes import read_votes
from bespoke.review.voting import VoteRequest, open_session, votes_path


def _other_address() -> str | None:
    """This machine's address on a non-loopback interface (none sent: a UDP socket only picks its route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, only routed
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def served(tmp_path):
    run = processed_run(tmp_path / "outputs")
    server = VoteServer(open_session(VoteRequest((run,), voter="alice"), seed=1))
    server.start()
    yield server, run
    server.shutdown()
    server.server_close()


def _request(port: int, method: str, path: str, *, host: str | None = None, headers: dict | None = None,
             body: bytes | None = None, address: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _secret(port: int) -> str:
    status, page = _request(port, "GET", "/")
    assert status == 200
    match = re.search(rb'"secret": "([0-9a-f]{32})"', page)
    assert match
    return match.group(1).decode()


def test_it_listens_on_loopback_alone(served):
    server, _ = served
    assert server.server_address[0] == "127.0.0.1" and server.url == f"http://127.0.0.1:{server.port}/"
    other = _other_address()
    if other is None:
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((other, server.port), timeout=5).close()


def test_a_request_from_another_machine_is_refused_even_when_it_reaches_the_socket(tmp_path):
    """Bound to every interface on purpose here: the handler itself refuses a non-loopback client."""
    other = _other_address()
    if other is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    run = processed_run(tmp_path / "outputs")

    class Everywhere(VoteServer):
        def server_bind(self):
            self.server_address = ("0.0.0.0", self.server_address[1])
            super().server_bind()

    server = Everywhere(open_session(VoteRequest((run,), voter="alice")))
    server.start()
    try:
        status, body = _request(server.port, "GET", "/", address=other)
        assert status == 403 and b"127.0.0.1" in body
        assert _request(server.port, "GET", "/")[0] == 200  # the same server on loopback answers
    finally:
        server.shutdown()
        server.server_close()


def test_only_loopback_host_names_are_answered(served):
    server, _ = served
    port = server.port
    assert _request(port, "GET", "/", host=f"evil.example:{port}")[0] == 403  # DNS rebinding
    assert _request(port, "GET", "/", host="")[0] == 403
    assert _request(port, "GET", "/", host="localhost:9000")[0] == 200  # ssh -L 9000:127.0.0.1:PORT
    assert _request(port, "GET", "/", host="[::1]")[0] == 200
    assert loopback_request("127.0.0.1", "127.0.0.1:80") and not loopback_request("10.1.2.3", "127.0.0.1:80")
    assert not loopback_request("127.0.0.1", "127.0.0.1.evil.example") and not loopback_request("::1", None)


def test_api_calls_need_the_pages_secret(served):
    server, run = served
    port = server.port
    assert _request(port, "GET", "/api/next?client=x")[0] == 403
    assert _request(port, "GET", "/api/next?client=x", headers={SECRET_HEADER: "0" * 32})[0] == 403
    secret = _secret(port)
    status, body = _request(port, "GET", "/api/next?client=x", headers={SECRET_HEADER: secret})
    assert status == 200
    token = json.loads(body)["token"]
    vote = json.dumps({"token": token, "answer": "left"}).encode()
    assert _request(port, "POST", "/api/vote", body=vote)[0] == 403
    assert not votes_path((run,)).exists()
    status, body = _request(port, "POST", "/api/vote", body=vote, headers={SECRET_HEADER: secret})
    assert status == 200 and json.loads(body) == {"ok": True, "written": True}
    assert [r.id for r in read_votes(votes_path((run,))).records] == [token]


def test_bad_requests_get_an_error_and_the_server_goes_on(served):
    server, _ = served
    port = server.port
    secret = {SECRET_HEADER: _secret(port)}
    assert _request(port, "POST", "/api/vote", body=b"not json", headers=secret)[0] == 409
    assert _request(port, "POST", "/api/vote", body=b"x" * 5000, headers=secret)[0] == 409
    status, body = _request(port, "POST", "/api/vote", body=b'{"token": "nope", "answer": "left"}',
                            headers=secret)
    assert status == 409 and "no longer on show" in json.loads(body)["error"]
    assert _request(port, "GET", "/img/nope/left/candidate")[0] == 404
    assert _request(port, "GET", "/etc/passwd")[0] == 404
    assert _request(port, "GET", "/")[0] == 200
