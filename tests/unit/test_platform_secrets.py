"""Platform credentials stay out of reprs and log lines."""

from __future__ import annotations

from adapters.observability import redact_secrets
from application.platform_connections import Credentials


def test_credentials_never_show_in_their_repr() -> None:
    credentials = Credentials(access_token="tok-123", webhook_secret="sec-456")
    for text in (repr(credentials), str(credentials), f"{credentials!r}", str([credentials])):
        assert "tok-123" not in text
        assert "sec-456" not in text


def test_a_log_field_named_like_a_credential_is_masked() -> None:
    event = {"event": "x", "accessToken": "tok", "webhook_secret": "sec", "other": "kept"}
    assert redact_secrets(None, "info", event) == {
        "event": "x",
        "accessToken": "<redacted>",
        "webhook_secret": "<redacted>",
        "other": "kept",
    }
