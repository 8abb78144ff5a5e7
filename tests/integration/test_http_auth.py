"""Who may do what over HTTP: every endpoint that acts refuses a missing, malformed or revoked
token (401) and a role below its own (403) before it changes anything; the cookie needs the
CSRF header to act; a policy can ask for a role; tokens are shown once and stored hashed."""

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitl.checkpoints.stores import Role, open_token_store
from hitl.server.auth import CSRF_HEADER
from tests.support.cli import Workspace, describe
from tests.support.http import Answer, Api, assert_error, only_call, open_api
from tests.support.plugins import plugin_spec
from tests.support.prompts import COUNT, SALLY
from tests.support.services import make_token, running_service


@dataclass(frozen=True)
class Endpoint:
    """An endpoint that acts (or manages tokens), and the least role that may call it."""

    method: str
    path: str
    body: dict[str, Any] | None
    role: Role
    let_through: tuple[int, ...] = (200, 201, 202)
    """Its status with the role (past the role check, a request may still be refused)."""

    def request(self, api: Api, thread_id: str, call: str, **kwargs: Any) -> Answer:
        def filled(text: str) -> str:
            return text.replace("{thread}", thread_id).replace("{call}", call)

        body = None if self.body is None else json.loads(filled(json.dumps(self.body)))
        return api.call(self.method, filled(self.path), json=body, **kwargs)


EDITED = {"message": "hello", "recipient": "sally@example.com"}
ENDPOINTS = [
    Endpoint("POST", "/threads/{thread}/approve", {"call": "{call}"}, "approver"),
    Endpoint("POST", "/threads/{thread}/reject", {"call": "{call}", "reason": "no"}, "approver"),
    Endpoint("POST", "/threads/{thread}/edit", {"call": "{call}", "args": EDITED}, "approver"),
    Endpoint("POST", "/threads/{thread}/respond", {"call": "{call}", "message": "hi"}, "approver"),
    Endpoint(  # the call is not in doubt: refused, but not for who asks
        "POST", "/threads/{thread}/reconcile", {"call": "{call}", "action": "skip"}, "admin", (409,)
    ),
    Endpoint("POST", "/threads/{thread}/resume", None, "admin"),
    Endpoint("POST", "/threads", {"prompt": SALLY}, "approver"),
    Endpoint(
        "POST", "/threads/{thread}/runs", {"prompt": COUNT, "cancel_pending": True}, "approver"
    ),
    Endpoint("POST", "/sweep", None, "admin"),
    Endpoint("GET", "/tokens", None, "admin"),
    Endpoint("POST", "/tokens", {"name": "eve", "role": "admin"}, "admin"),
    Endpoint("DELETE", "/tokens/bob", None, "admin"),
    Endpoint("GET", "/webhooks", None, "admin"),
    Endpoint("POST", "/webhooks", {"url": "https://example.com/hooks/hitl"}, "admin"),
    Endpoint("DELETE", "/webhooks/no-such-webhook", None, "admin", (404,)),
    Endpoint("GET", "/webhooks/deliveries", None, "admin"),
    Endpoint("POST", "/approvals/{thread}/{call}/links", {"for": "alice"}, "approver", (201,)),
]
ROLE_OF = {"approver": "alice", "admin": "root"}
"""The token (of `test_http_api.TOKENS`) with just that role."""

REFUSALS: dict[str, tuple[dict[str, str], int]] = {
    "no token": ({}, 401),
    "another scheme": ({"Authorization": "Basic {alice}"}, 401),
    "no secret": ({"Authorization": "Bearer"}, 401),
    "an unknown token": ({"Authorization": "Bearer {unknown}"}, 401),
    "a revoked admin token": ({"Authorization": "Bearer {revoked}"}, 401),
    "a viewer": ({"Authorization": "Bearer {victor}"}, 403),
    "an approver": ({"Authorization": "Bearer {alice}"}, 403),
}
"""Headers that must not get through, and the status that refuses them."""


@dataclass(frozen=True)
class Waiting:
    """A service whose thread waits for a decision, and the secrets the refusals use."""

    api: Api
    thread_id: str
    call: str
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Waiting]:
    # refused requests change nothing, so they can all share one service
    with open_api(tmp_path_factory.mktemp("auth")) as api:
        view = api.start(SALLY)
        _, revoked = api.app.state.tokens.create("rita", "admin", created_by="tests")
        api.app.state.tokens.revoke("rita")
        known = api.secrets | {"revoked": revoked, "unknown": "hitl_" + secrets.token_urlsafe(32)}
        yield Waiting(api, view["thread_id"], only_call(view), known)


def refusal_cases() -> Iterator[Any]:
    for endpoint in ENDPOINTS:
        for refusal in REFUSALS:
            if refusal == "an approver" and endpoint.role != "admin":
                continue
            yield pytest.param(
                endpoint, refusal, id=f"{endpoint.method} {endpoint.path} by {refusal}"
            )


@pytest.mark.parametrize(("endpoint", "refusal"), list(refusal_cases()))
def test_an_acting_endpoint_refuses_a_caller_without_the_role_and_changes_nothing(
    waiting: Waiting, endpoint: Endpoint, refusal: str
) -> None:
    template, status = REFUSALS[refusal]
    headers = {k: v.format(**waiting.secrets) for k, v in template.items()}
    api = waiting.api
    before = api.state()

    answer = endpoint.request(api, waiting.thread_id, waiting.call, by=None, headers=headers)

    if status == 401:
        error = assert_error(answer, 401, "Unauthenticated")
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="hitl"'
        if refusal in ("a revoked admin token", "an unknown token"):
            assert "not valid" in error["message"] and "ask an admin" in error["message"]
        else:  # how to get one
            assert "Bearer <token>" in error["message"]
            assert "hitl token create NAME --role" in error["message"]
    else:
        error = assert_error(answer, 403, "Forbidden")
        assert f"this needs {endpoint.role!r}" in error["message"]
    assert api.state() == before, "a refused request changed the database or the outbox"
    assert api.get(f"/approvals/{waiting.thread_id}/{waiting.call}").json()["status"] == "pending"


@pytest.fixture(scope="module")
def open_for_business(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(tmp_path_factory.mktemp("allowed")) as api:
        yield api


@pytest.mark.parametrize(
    "endpoint", [pytest.param(e, id=f"{e.method} {e.path}") for e in ENDPOINTS]
)
def test_an_acting_endpoint_lets_its_least_role_through(
    open_for_business: Api, endpoint: Endpoint
) -> None:
    # the other side of the refusals: the same request, with the role, is not refused
    api = open_for_business
    view = api.start(SALLY)

    answer = endpoint.request(api, view["thread_id"], only_call(view), by=ROLE_OF[endpoint.role])

    assert answer.status_code in endpoint.let_through, answer.text
    if answer.status_code == 202:
        assert api.finished(answer)["status"] == "done"


# what is open


def test_the_api_reference_needs_a_token_and_its_page_uses_only_assets_served_here(
    api: Api,
) -> None:
    """Only `/healthz` and the sign-in page (with its static files) answer a stranger."""
    assert_error(api.get("/openapi.json", by=None), 401, "Unauthenticated")
    browsing = {"Accept": "text/html"}
    docs = api.get("/docs", by=None, headers=browsing, follow_redirects=False)
    assert (docs.status_code, docs.headers["location"]) == (303, "/login?next=%2Fdocs")
    assert api.get("/redoc", by=None).status_code == 404

    schema = api.get("/openapi.json", by="victor")
    page = api.get("/docs", by="victor", headers=browsing)

    assert schema.json()["info"]["title"].startswith("hitl")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3, assets  # the script, the style sheet, the icon
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served here"
        assert api.get(asset, by=None).status_code == 200, asset
    assert "url: '/openapi.json'" in page.text


# the web inbox's cookie


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with open_api(tmp_path) as opened:
        yield opened


def test_the_cookie_reads_but_acts_only_with_the_csrf_header(api: Api) -> None:
    view = api.start(SALLY)
    thread_id, call = view["thread_id"], only_call(view)
    cookie = {"Cookie": f"hitl_token={api.secrets['alice']}"}

    assert api.get(f"/threads/{thread_id}", by=None, headers=cookie).status_code == 200
    before = api.state()
    forged = api.post(f"/threads/{thread_id}/approve", json={"call": call}, by=None, headers=cookie)
    assert_error(forged, 403, "Forbidden", CSRF_HEADER)
    assert api.state() == before

    accepted = api.post(
        f"/threads/{thread_id}/approve",
        json={"call": call},
        by=None,
        headers=cookie | {CSRF_HEADER: "1"},
    )

    assert api.finished(accepted)["status"] == "done"
    assert api.sent_ids() == [call]
    assert accepted.json()["decided"][0]["decided_by"] == "alice"


# a policy that names a role


def test_a_policy_that_names_the_admin_role_refuses_an_approver_and_admits_an_admin(
    tmp_path: Path,
) -> None:
    with open_api(tmp_path, {"HITL_POLICY": plugin_spec("ADMINS_ONLY")}) as api:
        view = api.start(SALLY)
        thread_id, [pending] = view["thread_id"], view["pending"]
        call = pending["tool_call_id"]
        assert api.get(f"/approvals/{thread_id}/{call}").json()["approvers"] == ["role:admin"]
        before = api.state()

        for path, body in [("approve", {"call": call}), ("edit", {"call": call, "args": EDITED})]:
            refused = api.post(f"/threads/{thread_id}/{path}", json=body, by="alice")
            assert_error(refused, 403, "NotPermitted", "'alice' may not", "role:admin")
        assert api.state() == before

        accepted = api.post(f"/threads/{thread_id}/approve", json={"call": call}, by="root")

        assert api.finished(accepted)["status"] == "done"
        assert api.sent_ids() == [call]
        assert accepted.json()["decided"][0]["decided_by"] == "root"


# tokens


def database_bytes(db: Path) -> bytes:
    """The database file and its journals, as they are on disk."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(f"{db.name}*")))


def test_a_token_made_by_the_cli_is_shown_once_and_only_its_hash_is_stored(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)

    made = workspace.run("token", "create", "carol", "--role", "approver")
    assert made.returncode == 0, describe(made)
    secret, notice = made.stdout.splitlines()
    assert secret.startswith("hitl_") and "shown once" in notice
    listed = workspace.json("token", "list")
    duplicate = workspace.run("token", "create", "carol", "--role", "admin")
    revoked = workspace.json("token", "revoke", "carol")

    assert [(t["name"], t["role"]) for t in listed["tokens"]] == [("carol", "approver")]
    assert secret not in json.dumps(listed)
    assert duplicate.returncode == 10, describe(duplicate)
    assert "a token named 'carol' exists already" in duplicate.stderr
    assert "hitl token revoke carol" in duplicate.stderr
    assert revoked["revoked_at"] is not None
    stored = database_bytes(workspace.db)
    assert secret.encode() not in stored
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    with open_token_store(workspace.db) as tokens:
        assert tokens.authenticate(secret) is None  # revoked: it stopped working


def test_the_service_log_never_holds_a_token_secret(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        alice = make_token(service, "alice", "approver")
        victor = make_token(service, "victor", "viewer")
        gone = make_token(service, "gone", "approver")
        with service.client() as admin:
            assert admin.delete("/tokens/gone").status_code == 200
        unknown = "hitl_" + secrets.token_urlsafe(32)
        with service.client(alice) as client:
            thread = client.post("/threads", json={"prompt": SALLY})
            assert thread.status_code == 202
            assert client.get("/me").json() == {"name": "alice", "role": "approver"}
        answers = [
            httpx.get(f"{service.url}/me", headers={"Authorization": f"Bearer {t}"})
            for t in (gone, unknown)
        ]
        answers.append(httpx.get(f"{service.url}/me", headers={"Authorization": f"Basic {alice}"}))
        answers.append(httpx.get(f"{service.url}/me", headers={"Cookie": f"hitl_token={alice}"}))
        answers.append(
            httpx.post(
                f"{service.url}/threads/{thread.json()['thread_id']}/approve",
                json={},
                headers={"Authorization": f"Bearer {victor}"},
            )
        )
        assert [a.status_code for a in answers] == [401, 401, 401, 200, 403]
    log = service.log()

    assert '"GET /me HTTP/1.1" 401' in log  # the refused requests were logged
    assert '"POST /threads' in log
    for secret in (alice, victor, gone, unknown):
        assert secret not in log
    assert log.count(service.admin_token) == 1  # the first start's notice, shown once
