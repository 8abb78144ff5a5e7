"""Sending webhooks: how a body is signed and verified, where one may be sent, and the
dispatcher that POSTs the outbox.

Each request carries `X-Hitl-Timestamp` (UNIX seconds) and `X-Hitl-Signature`, which is
`sha256=` + the hex HMAC-SHA256, keyed with the endpoint's secret, of `"{timestamp}."` followed
by the exact body bytes. Delivery is at least once (see `checkpoints/webhooks.py`); receivers
de-duplicate by the body's `id`. Secrets are never logged.

Whoever may add a webhook must not be able to make the service POST to the cloud's metadata
service or to the machines behind its firewall (SSRF): `Destinations` refuses link-local and
metadata addresses always, and private and loopback ones unless `HITL_WEBHOOK_ALLOW_PRIVATE`
allows them; it checks the addresses a URL's host resolves to when the endpoint is added, and
again before each delivery, which then connects to the address it checked (a name that
resolves elsewhere a moment later is not followed).
"""

import hashlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from hitl.checkpoints.errors import WebhookError
from hitl.checkpoints.stores import Claim, Endpoint, WebhookStore

Clock = Callable[[], float]
BodyOf = Callable[[str, str], str]
"""(event type, stored payload) -> the body sent: what is added when sent, never stored (a
decision link)."""

SIGNATURE_PREFIX = "sha256="
TOLERANCE_SECONDS = 300
"""How old (or how far in the future) a timestamp `verify` accepts: the replay window."""
TIMEOUT_SECONDS = 10.0
BATCH = 20
"""Deliveries claimed (and sent one after the other) per `run_once`."""
USER_AGENT = "hitl-webhooks/1"
_ERROR_BODY_BYTES = 300  # of a refusing receiver's answer, kept in `last_error`

logger = logging.getLogger(__name__)


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Hitl-Signature` of `body` sent at `timestamp` (UNIX seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `signature` signs `body` at `timestamp`, and that timestamp is recent.

    A timestamp more than `tolerance` seconds from `now` is refused, so a captured request
    cannot be replayed later; within the window, de-duplicate by the body's `id`.
    """
    text = str(timestamp)
    if not (text.isascii() and text.isdigit() and signature.isascii()):
        return False  # compare_digest refuses non-ASCII text; such a header is forged anyway
    current = time.time() if now is None else now
    if abs(current - int(text)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, text, body), signature)


ALLOW_PRIVATE_SETTING = "HITL_WEBHOOK_ALLOW_PRIVATE"
"""`1`: webhooks may go to private and loopback addresses (receivers on this machine or
network); link-local and metadata addresses stay refused."""
NEVER = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
"""Link-local networks and cloud metadata addresses (AWS's IPv6 one, Alibaba's): refused even
where private addresses are allowed."""
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data.ec2.internal"}
)
"""Names of metadata services, refused whatever they resolve to."""
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class Target:
    """Where one delivery connects: `url` names the checked address; `host` is the URL's own
    host, sent as `Host` and (for https) as the TLS server name the certificate must match."""

    url: str
    host: str


@dataclass(frozen=True)
class Destinations:
    """Which addresses webhooks may be sent to, checked after DNS resolution."""

    allow_private: bool = False
    """Private and loopback addresses too (`HITL_WEBHOOK_ALLOW_PRIVATE=1`)."""
    resolve: Resolver = _resolve

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Destinations":
        allow = environ.get(ALLOW_PRIVATE_SETTING, "").strip().lower()
        return cls(allow_private=allow in ("1", "true", "yes"))

    def check(self, url: str, *, unresolved_ok: bool = False) -> list[Address]:
        """The addresses `url`'s host resolves to, each one allowed; `WebhookError` saying why
        not. With `unresolved_ok` (a new endpoint), a name that does not resolve yet passes:
        each delivery checks again."""
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
        if parts.scheme not in ("http", "https") or not host:
            return []  # not a webhook URL at all: the store says so
        if host in METADATA_HOSTS:
            raise WebhookError(f"{url!r} names a cloud metadata service; webhooks never go there")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = [ipaddress.ip_address(a.partition("%")[0]) for a in self.resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as e:
            if unresolved_ok:
                return []
            raise WebhookError(f"cannot resolve the host of {url!r}: {e}") from None
        for address in found:
            self._check_address(url, address)
        return found

    def target(self, url: str) -> Target:
        """Where to send a delivery to `url`: its host's first address, once every one of
        them passed `check` (connecting to it, not to the name, keeps a DNS answer that
        changes in between from taking the request elsewhere)."""
        address = self.check(url)[0]
        parts = urlsplit(url)
        shown = f"[{address}]" if address.version == 6 else str(address)
        netloc = shown if parts.port is None else f"{shown}:{parts.port}"
        userinfo, at, host = parts.netloc.rpartition("@")
        netloc = f"{userinfo}{at}{netloc}"  # a user and password in the URL are still sent
        return Target(urlunsplit(parts._replace(netloc=netloc)), host)

    def _check_address(self, url: str, address: Address) -> None:
        reached = (address, *_embedded_ipv4(address))  # NAT64, 6to4, ... reach IPv4
        for each in reached:
            if each.is_link_local or any(each in network for network in NEVER):
                raise WebhookError(
                    f"{url!r} points to {each}, a link-local or cloud metadata address; "
                    "webhooks never go there"
                )
        if self.allow_private:
            return
        for each in reached:
            site_local = isinstance(each, ipaddress.IPv6Address) and each.is_site_local
            if not each.is_global or each.is_multicast or site_local:
                raise WebhookError(
                    f"{url!r} points to {each}, a private or loopback address; to send "
                    f"webhooks to this machine or network, set {ALLOW_PRIVATE_SETTING}=1 "
                    "where hitl runs"
                )


_LOW_32_BITS_ARE_IPV4 = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # NAT64, local use (RFC 8215)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated, still routed by some)
)


def _embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches (mapped, 6to4, Teredo, NAT64): each must
    pass the same checks, or `[64:ff9b::a9fe:a9fe]` would reach the metadata address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found += list(address.teredo)
    if any(address in network for network in _LOW_32_BITS_ARE_IPV4):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def add_endpoint(
    store: WebhookStore,
    destinations: Destinations,
    url: str,
    *,
    events: Sequence[str] | None,
    secret: str | None,
    created_by: str,
) -> tuple[Endpoint, str]:
    """`store.add_endpoint`, unless `url` points where webhooks may not go (`WebhookError`)."""
    destinations.check(url, unresolved_ok=True)
    return store.add_endpoint(url, events=events, secret=secret, created_by=created_by)


def headers_for(claim: Claim, timestamp: int, body: bytes | None = None) -> dict[str, str]:
    """The headers of one attempt of a claimed delivery (whose body is its stored payload
    unless `body` says otherwise)."""
    body = claim.delivery.payload.encode() if body is None else body
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Hitl-Event": claim.delivery.event_type,
        "X-Hitl-Delivery": str(claim.delivery.id),
        "X-Hitl-Timestamp": str(timestamp),
        "X-Hitl-Signature": sign(claim.secret, timestamp, body),
    }


class WebhookDispatcher:
    """Turns new audit events into deliveries and POSTs the due ones, signed.

    A 2xx answer delivers; any other answer, a timeout or a connection error is a failed
    attempt, recorded with its reason and retried with backoff by the store's schedule.
    Several dispatchers (threads or processes) may share a database: claims keep them apart.
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        destinations: Destinations,
        client: httpx.Client | None = None,
        timeout: float = TIMEOUT_SECONDS,
        batch: int = BATCH,
        clock: Clock = time.time,
        body: BodyOf | None = None,
    ) -> None:
        self._store = store
        self._body = body
        self._destinations = destinations
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._timeout = timeout
        self.batch = batch
        self._clock = clock
        # long enough to send the whole batch one by one, each up to its timeout
        self._claim_seconds = (timeout + 5.0) * batch

    def run_once(self) -> int:
        """Enqueue new events, then attempt the deliveries that are due; return how many."""
        self._store.enqueue_from_audit()
        claims = self._store.claim_due(self._clock(), self.batch, self._claim_seconds)
        for claim in claims:
            self._attempt(claim)
        return len(claims)

    def run_forever(self, stop: threading.Event, interval: float = 1.0) -> None:
        """`run_once` every `interval` seconds (at once after a full batch) until `stop` is set.

        Meant for a background thread: an error (a database locked too long) is logged and
        the next round tries again.
        """
        while not stop.is_set():
            try:
                attempted = self.run_once()
            except Exception:
                logger.exception("webhook dispatch failed; retrying in %.1f s", interval)
                attempted = 0
            if attempted < self.batch:
                stop.wait(interval)

    def _attempt(self, claim: Claim) -> None:
        timestamp = int(self._clock())
        status_code: int | None = None
        try:
            payload = claim.delivery.payload
            if self._body is not None:  # inside the try: a failure is this attempt's
                payload = self._body(claim.delivery.event_type, payload)
            body = payload.encode()
            target = self._destinations.target(claim.url)  # checked again: DNS may have moved
            sni: dict[str, Any] = {"sni_hostname": urlsplit(claim.url).hostname}
            with self._client.stream(
                "POST",
                target.url,
                content=body,
                headers=headers_for(claim, timestamp, body) | {"Host": target.host},
                timeout=self._timeout,
                extensions=sni if target.url.startswith("https:") else None,
            ) as response:
                status_code = response.status_code
                ok = response.is_success
                error = None if ok else f"HTTP {status_code}: {_excerpt(response)}".strip()
        except Exception as e:  # whatever one receiver does, it must not stop the others
            ok, error = False, f"{type(e).__name__}: {e}"
        if not ok:
            logger.warning(
                "webhook delivery %s to endpoint %s failed: %s",
                claim.delivery.id,
                claim.delivery.webhook_id,
                error,
            )
        self._store.record_attempt(
            claim.delivery.id,
            ok=ok,
            status_code=status_code,
            error=error,
            now=self._clock(),
            claim=claim.token,
        )

    def close(self) -> None:
        """Close the HTTP client if this dispatcher made it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> "WebhookDispatcher":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _excerpt(response: httpx.Response) -> str:
    """The start of the answer's body, without reading a huge one whole."""
    read = b""
    for chunk in response.iter_bytes():
        read += chunk
        if len(read) >= _ERROR_BODY_BYTES:
            break
    return read[:_ERROR_BODY_BYTES].decode(errors="replace")
