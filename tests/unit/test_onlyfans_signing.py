"""Webhook signatures: t=<unix seconds>,v1=<hex hmac_sha256(secret, "t.body")>. No I/O."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from adapters.onlyfans.signing import sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"message.read","data":{"messageId":"m1"}}'
T = 1_700_000_000


def test_the_header_carries_the_timestamp_and_the_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_a_signed_body_verifies() -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + 5)


def test_bytes_and_str_secrets_are_the_same_secret() -> None:
    assert sign(SECRET.encode(), BODY, T) == sign(SECRET, BODY, T)


def test_a_tampered_body_is_refused() -> None:
    header = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY.replace(b"m1", b"m2"), header, now=T)
    assert not verify(SECRET, BODY + b" ", header, now=T), "even a byte of whitespace"


def test_a_wrong_secret_is_refused() -> None:
    assert not verify("whsec_other", BODY, sign(SECRET, BODY, T), now=T)


def test_a_changed_timestamp_is_refused() -> None:
    """The timestamp is signed: a replay cannot freshen it."""
    digest = sign(SECRET, BODY, T).split("v1=")[1]
    assert not verify(SECRET, BODY, f"t={T + 100},v1={digest}", now=T + 100)


@pytest.mark.parametrize(
    ("age", "valid"),
    [(0, True), (299, True), (300, True), (301, False), (3600, False), (-299, True), (-301, False)],
)
def test_the_timestamp_must_be_within_five_minutes_of_now_either_way(age: int, valid: bool) -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + age) is valid


def test_the_tolerance_can_be_narrowed() -> None:
    assert not verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + 61, tolerance=60)


def test_any_of_several_v1_signatures_may_match_as_during_a_secret_rotation() -> None:
    new = sign(SECRET, BODY, T).split("v1=")[1]
    old = sign("whsec_old", BODY, T).split("v1=")[1]
    assert verify(SECRET, BODY, f"t={T},v1={old},v1={new}", now=T)
    assert verify("whsec_old", BODY, f"t={T}, v1={old}, v1={new}", now=T)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"t={T}",
        "v1=abc",
        f"t=soon,v1={'0' * 64}",
        f"t={T},v1=",
        f"t={T},v1={'0' * 64}",
        f"t={T},v0={sign(SECRET, BODY, T).split('v1=')[1]}",
        f"t={T},v1=ünïcode",
    ],
)
def test_a_missing_or_malformed_header_is_refused_without_raising(header: str | None) -> None:
    assert not verify(SECRET, BODY, header, now=T)
