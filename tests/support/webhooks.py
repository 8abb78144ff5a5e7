"""A real local webhook receiver: it verifies each request's signature and answers as scripted."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hitl.service.webhooks import ALLOW_PRIVATE_SETTING, Destinations, verify

ALLOW_LOCAL_RECEIVERS = {ALLOW_PRIVATE_SETTING: "1"}
"""The setting a hitl process needs to send webhooks to a `Receiver`, which listens on the
loopback address (refused by default)."""
LOCAL_RECEIVERS = Destinations.from_env(ALLOW_LOCAL_RECEIVERS)
"""Where a dispatcher in this process may send webhooks: `Receiver`s too."""


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    event: str
    delivery: str
    timestamp: int
    content_type: str
    body: bytes
    valid: bool
    """Whether its signature verified with the secret of its path."""

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    """A local HTTP endpoint that verifies each request's signature and answers as scripted."""

    def __init__(self, answer: Callable[[int], int] = lambda n: 200, port: int = 0) -> None:
        self.answer = answer
        """The status code of the n-th request (from 1)."""
        self.secrets: dict[str, str] = {}
        """The secret each path verifies with."""
        self.received: list[Received] = []
        self.lock = threading.Lock()
        """Held while a request is recorded and answered."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp, signature = (
                    self.headers["X-Hitl-Timestamp"],
                    self.headers["X-Hitl-Signature"],
                )
                secret = receiver.secrets.get(self.path, "")
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            path=self.path,
                            event=self.headers["X-Hitl-Event"],
                            delivery=self.headers["X-Hitl-Delivery"],
                            timestamp=int(timestamp),
                            content_type=self.headers["Content-Type"],
                            body=body,
                            valid=verify(secret, timestamp, body, signature),
                        )
                    )
                    code = receiver.answer(len(receiver.received))
                answer = b"" if code < 300 else b"boom"
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def serving(answer: Callable[[int], int] = lambda n: 200, port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(answer, port)
    try:
        yield receiver
    finally:
        receiver.stop()
