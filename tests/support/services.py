"""Starting the real `hitl serve` in a subprocess, on a free port and throwaway files."""

import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hitl.checkpoints.urls import DatabaseName, parse_database
from tests.support.environment import HITL, hitl_environment, process_environment
from tests.support.processes import free_port, read_log

STARTUP_TIMEOUT_SECONDS = 60.0
_ADMIN = re.compile(r"first admin token \(shown once, keep it safe\): (hitl_\S+)")


@dataclass
class HitlService:
    """A running `hitl serve`, its files, and its first admin token."""

    url: str
    process: subprocess.Popen[bytes]
    db: DatabaseName
    """A SQLite file, or a PostgreSQL URL."""
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
    """The environment of `hitl serve` on `tmp`'s database and outbox, with `extra` settings."""
    return process_environment(hitl_environment(tmp / "hitl.sqlite", tmp / "outbox.jsonl", extra))


def start_service(
    tmp: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    port: int | None = None,
    admin_token: str | None = None,
    log_name: str = "serve.log",
    db: DatabaseName | None = None,
) -> HitlService:
    """Start `hitl serve` with its database in `tmp` (or `db`); wait until `/healthz` answers.

    A restart on the same files passes the first start's `admin_token` (it is printed once).
    """
    service = _spawn_service(tmp, env=env, args=args, port=port, log_name=log_name, db=db)
    _wait_until_up(service)
    if admin_token is None:
        admin_token = _printed_admin_token(service)
        assert admin_token, f"no admin token printed:\n{service.log()}"
    service.admin_token = admin_token
    return service


def start_services(
    tmp: Path,
    count: int,
    *,
    db: DatabaseName,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    separate_hosts: bool = False,
) -> list[HitlService]:
    """`count` processes of `hitl serve` on one database, all started before any is up (so
    they race to set it up); each has its own log, all share `tmp`'s outbox. Exactly one
    must print the first admin token: every service gets it.

    With `separate_hosts`, each has a TMPDIR of its own, so its own folder of runner-token
    locks: they judge each other's runners as another host's (by lease and heartbeat), as
    containers on different machines do.
    """
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    services = []
    for n, port in enumerate(sorted(ports)):
        own = dict(env or {})
        if separate_hosts:
            (tmp / f"host-{n}").mkdir(exist_ok=True)
            own["TMPDIR"] = str(tmp / f"host-{n}")
        services.append(
            _spawn_service(tmp, env=own, args=args, port=port, log_name=f"serve-{n}.log", db=db)
        )
    try:
        for service in services:
            _wait_until_up(service)
        printed = [t for t in map(_printed_admin_token, services) if t is not None]
        assert len(printed) == 1, f"{len(printed)} first admin tokens printed, not 1"
    except BaseException:
        for service in services:
            service.stop()
        raise
    for service in services:
        service.admin_token = printed[0]
    return services


def _spawn_service(
    tmp: Path,
    *,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    port: int | None = None,
    log_name: str = "serve.log",
    db: DatabaseName | None = None,
) -> HitlService:
    """Start `hitl serve` and return at once (its `admin_token` is not known yet)."""
    environment = service_env(tmp, env)
    if db is not None:
        environment["HITL_DB"] = str(db)
    port = port or free_port()
    log_path = tmp / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(HITL), "serve", "--port", str(port), *args],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return HitlService(
        url=f"http://127.0.0.1:{port}",
        process=process,
        db=parse_database(environment["HITL_DB"]),
        outbox=Path(environment["HITL_OUTBOX"]),
        log_path=log_path,
        admin_token="",
        env=environment,
    )


def _wait_until_up(service: HitlService) -> None:
    """Wait until the service's `/healthz` answers; fail with its log if it exits first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"hitl serve exited with {service.process.returncode}:\n{service.log()}"
            )
        try:
            if httpx.get(f"{service.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            service.process.kill()
            raise RuntimeError(f"hitl serve did not start:\n{service.log()}")
        time.sleep(0.1)


def _printed_admin_token(service: HitlService) -> str | None:
    """The first admin token the service printed at its start, if it made one."""
    found = _ADMIN.search(service.log())
    return None if found is None else found.group(1)


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


def accepted(answer: httpx.Response) -> dict[str, Any]:
    """The body of a `202`, checked to be one."""
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body
