"""Start the real `hitl serve` in a subprocess, on a free port and throwaway files."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import free_port, read_log

HITL = Path(sys.executable).parent / "hitl"
STARTUP_TIMEOUT_SECONDS = 60.0
_ADMIN = re.compile(r"first admin token \(shown once, keep it safe\): (hitl_\S+)")


@dataclass
class HitlService:
    """A running `hitl serve`, its files, and its first admin token."""

    url: str
    process: subprocess.Popen[bytes]
    db: Path
    outbox: Path
    log_path: Path
    admin_token: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client of the service, signed in with `token` (default: the admin's)."""
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def log(self) -> str:
        return read_log(self.log_path)

    def kill(self) -> None:
        """`kill -9`: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def service_env(tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("HITL_TOOLS", "HITL_POLICY", "HITL_ACTOR"):
        env.pop(name, None)
    env.update(
        HITL_DB=str(tmp / "hitl.sqlite"),
        HITL_OUTBOX=str(tmp / "outbox.jsonl"),
        HITL_MODEL="offline",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def start_service(
    tmp: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    port: int | None = None,
    admin_token: str | None = None,
    log_name: str = "serve.log",
) -> HitlService:
    """Start `hitl serve` with its database in `tmp`; wait until `/healthz` answers.

    A restart on the same files passes the first start's `admin_token` (it is printed once).
    """
    environment = service_env(tmp, env)
    port = port or free_port()
    log_path = tmp / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(HITL), "serve", "--port", str(port), *args],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"hitl serve exited with {process.returncode}:\n{read_log(log_path)}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"hitl serve did not start:\n{read_log(log_path)}")
        time.sleep(0.1)
    if admin_token is None:
        found = _ADMIN.search(read_log(log_path))
        assert found, f"no admin token printed:\n{read_log(log_path)}"
        admin_token = found.group(1)
    return HitlService(
        url=url,
        process=process,
        db=Path(environment["HITL_DB"]),
        outbox=Path(environment["HITL_OUTBOX"]),
        log_path=log_path,
        admin_token=admin_token,
        env=environment,
    )


@contextmanager
def running_service(tmp: Path, **kwargs: Any) -> Iterator[HitlService]:
    service = start_service(tmp, **kwargs)
    try:
        yield service
    finally:
        service.stop()


def make_token(service: HitlService, name: str, role: str) -> str:
    """A new token, made through the API with the admin token."""
    with service.client() as client:
        answer = client.post("/tokens", json={"name": name, "role": role})
        answer.raise_for_status()
        return str(answer.json()["token"])


def start_and_wait(client: httpx.Client, prompt: str, **body: Any) -> dict[str, Any]:
    """Start a thread, wait for its run to end, return the thread."""
    accepted = client.post("/threads", json={"prompt": prompt, **body})
    accepted.raise_for_status()
    wait_run(client, accepted.json()["run"]["run_id"])
    thread: dict[str, Any] = client.get(f"/threads/{accepted.json()['thread_id']}").json()
    return thread


def wait_run(client: httpx.Client, run_id: str, timeout: float = 60) -> dict[str, Any]:
    """The run once it has finished (long-polls `GET /runs/{id}?wait=`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/runs/{run_id}", params={"wait": 10}).json()
        if run["status"] in ("done", "failed"):
            return run
    raise TimeoutError(f"run {run_id} did not finish in {timeout} s")


SEND_PROMPT = "Send sally@example.com an email saying 'hi'"
