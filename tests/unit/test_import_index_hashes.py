"""The import index's keyed hashes: the stored entries depend on them never changing."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from adapters.postgres.imports_index import IndexHasher
from application.imports import FanRow


@given(st.binary(min_size=1, max_size=64), st.text(max_size=30), st.text(max_size=80))
def test_a_key_hash_is_the_hmac_sha256_the_index_was_built_with(
    key: bytes, tenant: str, match_key: str
) -> None:
    message = f"{tenant}\x00{match_key}".encode()
    assert IndexHasher(key).key_hash(tenant, match_key) == hmac.digest(key, message, "sha256")


def test_a_row_digest_ignores_the_row_number_and_depends_on_key_tenant_and_values() -> None:
    hasher = IndexHasher(b"k" * 32)
    row = FanRow(row=2, handle="ann", value_cents=5)
    digest = hasher.row_digest(b"t1", row)

    assert len(digest) == 16
    assert hasher.row_digest(b"t1", FanRow(row=9, handle="ann", value_cents=5)) == digest
    assert hasher.row_digest(b"t1", FanRow(row=2, handle="ann", value_cents=6)) != digest
    assert hasher.row_digest(b"t2", row) != digest
    assert IndexHasher(b"j" * 32).row_digest(b"t1", row) != digest
