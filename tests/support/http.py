"""The JSON API in this process, its lifespan (and so its workers) running: requests signed with
a token per name, and what a test reads of the answers."""

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from hitl.checkpoints.stores import TokenStore
from hitl.checkpoints.urls import DatabaseName
from hitl.server.app import ServerOptions, create_app
from hitl.service.settings import Settings
from tests.support.harness import hitl_settings
from tests.support.prompts import SALLY
from tests.support.sql import database_fingerprint

TOKENS = {"alice": "approver", "bob": "approver", "victor": "viewer", "root": "admin"}
"""The tokens every test service has, by name (the identity decisions are recorded as)."""
WAIT_SECONDS = 30.0
Answer = Any
"""A `TestClient` response: httpx's, or httpx2's where that is installed (Starlette prefers it)."""


@dataclass(frozen=True)
class Api:
    """The service on a file database of its own, its lifespan running, and a token per name."""

    app: FastAPI
    client: TestClient
    settings: Settings
    outbox: Path
    secrets: dict[str, str]

    @property
    def db(self) -> DatabaseName:
        return self.settings.db

    def call(self, method: str, path: str, *, by: str | None = "alice", **kwargs: Any) -> Answer:
        """A request signed with `by`'s token (`None`: no token)."""
        headers = dict(kwargs.pop("headers", {}))
        if by is not None:
            headers["Authorization"] = f"Bearer {self.secrets[by]}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, *, by: str | None = "alice", **kwargs: Any) -> Answer:
        return self.call("GET", path, by=by, **kwargs)

    def post(self, path: str, *, by: str | None = "alice", **kwargs: Any) -> Answer:
        return self.call("POST", path, by=by, **kwargs)

    def finished(self, accepted: Answer) -> dict[str, Any]:
        """The run a 202 answer points to, once it has finished."""
        assert accepted.status_code == 202, accepted.text
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.get(accepted.headers["Location"], params={"wait": 5}).json()
            if run["status"] in ("done", "failed"):
                return run
        raise TimeoutError(f"{accepted.headers['Location']} did not finish")

    def thread(self, thread_id: str) -> dict[str, Any]:
        answer = self.get(f"/threads/{thread_id}")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def start(self, prompt: str = SALLY, *, by: str = "alice") -> dict[str, Any]:
        """A new thread, once its first run has finished."""
        accepted = self.post("/threads", json={"prompt": prompt}, by=by)
        assert self.finished(accepted)["status"] == "done"
        return self.thread(accepted.json()["thread_id"])

    def sent_ids(self) -> list[str]:
        """The tool call IDs of the emails `send_email` really sent, in order."""
        if not self.outbox.exists():
            return []
        return [json.loads(line)["tool_call_id"] for line in self.outbox.read_text().splitlines()]

    def state(self) -> tuple[Any, list[str]]:
        """What a refused request must leave as it was: every table's rows, and the outbox."""
        return database_fingerprint(self.db), self.sent_ids()


@contextmanager
def open_api(
    folder: Path, environ: Mapping[str, str] | None = None, *, db: DatabaseName | None = None
) -> Iterator[Api]:
    """The service in this process on `db` (default `folder/hitl.sqlite`), with the `TOKENS`."""
    outbox = folder / "outbox.jsonl"
    settings = hitl_settings(db or folder / "hitl.sqlite", outbox, environ)
    app = create_app(settings, ServerOptions(sweep_interval=0, webhooks=False))
    with TestClient(app) as client:
        store: TokenStore = app.state.tokens
        secrets = {
            name: store.create(name, role, created_by="tests")[1] for name, role in TOKENS.items()
        }
        yield Api(app, client, settings, outbox, secrets)


def only_call(view: dict[str, Any]) -> str:
    [call] = view["pending"]
    return str(call["tool_call_id"])


def assert_error(answer: Answer, status: int, error_type: str, *says: str) -> dict[str, Any]:
    """Check an error answer's status and shape; return its `error`."""
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert (error["type"], error["status"]) == (error_type, status), answer.text
    for fragment in says:
        assert fragment in error["message"], f"{fragment!r} not in {error['message']!r}"
    return error


def tool_message(view: dict[str, Any], call: str) -> dict[str, Any]:
    return next(m for m in view["messages"] if m.get("tool_call_id") == call)
