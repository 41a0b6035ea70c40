"""API keys: created once and shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg
import msgspec

from application.permissions import ROLES, Permission, permissions_of

_PREFIX = "crm_"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key decides the tenant, never the request body."""

    key_id: str
    user_id: str
    role: str

    def may(self, permission: Permission) -> bool:
        return permission in permissions_of(self.role)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_api_key(
    pool: asyncpg.Pool, *, user_id: str, role: str, label: str | None = None
) -> tuple[str, Principal]:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(4)
    key = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    await pool.execute(
        "INSERT INTO api_keys (key_id, key_hash, user_id, role, label) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        hash_key(key),
        user_id,
        role,
        label,
    )
    return key, Principal(key_id, user_id, role)


async def find_principal(pool: asyncpg.Pool, key: str) -> Principal | None:
    row = await pool.fetchrow(
        "SELECT key_id, user_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        hash_key(key),
    )
    return Principal(row["key_id"], row["user_id"], row["role"]) if row else None


async def grant_tenants(pool: asyncpg.Pool, key_id: str, tenants: list[str]) -> None:
    """Let an auditor key read these tenants' history ('*': every tenant)."""
    await pool.execute(
        "INSERT INTO api_key_grants (key_id, tenant_id) SELECT $1, t FROM unnest($2::text[]) t"
        " ON CONFLICT DO NOTHING",
        key_id,
        tenants,
    )


async def granted_tenants(pool: asyncpg.Pool, key_id: str) -> frozenset[str]:
    rows = await pool.fetch("SELECT tenant_id FROM api_key_grants WHERE key_id = $1", key_id)
    return frozenset(row["tenant_id"] for row in rows)
