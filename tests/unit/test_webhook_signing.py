"""A webhook's signature proves who sent which body when; anything else fails to verify."""

import hashlib
import hmac

from hitl.service.webhooks import sign, verify

SECRET = "s3cret-s3cret-s3cret"
BODY = b'{"id":"t1:2","type":"approval.decided"}'
NOW = 1_800_000_000


def test_the_signature_is_the_documented_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"sha256={expected}"
    assert sign(SECRET, str(NOW), BODY) == sign(SECRET, NOW, BODY)


def test_a_fresh_signature_verifies() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, NOW, BODY, signature, now=NOW)
    assert verify(SECRET, str(NOW), BODY, signature, now=NOW + 299)


def test_a_tampered_body_does_not_verify() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify(SECRET, NOW, BODY.replace(b"decided", b"expired"), signature, now=NOW)


def test_a_signature_made_with_another_secret_does_not_verify() -> None:
    assert not verify(SECRET, NOW, BODY, sign("another-secret-entirely", NOW, BODY), now=NOW)


def test_a_signature_moved_to_another_timestamp_does_not_verify() -> None:
    assert not verify(SECRET, NOW + 1, BODY, sign(SECRET, NOW, BODY), now=NOW)


def test_a_stale_or_future_timestamp_is_refused_even_with_a_valid_signature() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify(SECRET, NOW, BODY, signature, now=NOW + 301)
    assert not verify(SECRET, NOW, BODY, signature, now=NOW - 301)
    assert verify(SECRET, NOW, BODY, signature, tolerance=600, now=NOW + 301)


def test_a_malformed_timestamp_or_signature_is_refused() -> None:
    assert not verify(SECRET, "yesterday", BODY, sign(SECRET, NOW, BODY), now=NOW)
    assert not verify(SECRET, NOW, BODY, "", now=NOW)
    assert not verify(SECRET, NOW, BODY, "sha256=" + "0" * 64, now=NOW)
    assert not verify(SECRET, NOW, BODY, sign(SECRET, NOW, BODY) + "é", now=NOW)
    assert not verify(SECRET, f" {NOW}", BODY, sign(SECRET, f" {NOW}", BODY), now=NOW)
