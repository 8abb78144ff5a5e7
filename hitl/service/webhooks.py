"""Sending webhooks: how a body is signed and verified, and the dispatcher that POSTs the outbox.

Each request carries `X-Hitl-Timestamp` (UNIX seconds) and `X-Hitl-Signature`, which is
`sha256=` + the hex HMAC-SHA256, keyed with the endpoint's secret, of `"{timestamp}."` followed
by the exact body bytes. Delivery is at least once (see `checkpoints/webhooks.py`); receivers
de-duplicate by the body's `id`. Secrets are never logged.
"""

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

import httpx

from hitl.checkpoints.stores import Claim, WebhookStore

Clock = Callable[[], float]

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


def headers_for(claim: Claim, timestamp: int) -> dict[str, str]:
    """The headers of one attempt of a claimed delivery."""
    body = claim.delivery.payload.encode()
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
        client: httpx.Client | None = None,
        timeout: float = TIMEOUT_SECONDS,
        batch: int = BATCH,
        clock: Clock = time.time,
    ) -> None:
        self._store = store
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
            with self._client.stream(
                "POST",
                claim.url,
                content=claim.delivery.payload.encode(),
                headers=headers_for(claim, timestamp),
                timeout=self._timeout,
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
