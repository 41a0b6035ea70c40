"""API keys: created once and shown once; only their SHA-256 is stored.

Two kinds: the keys of the first release (creator, auditor, admin), one tenant each; and the
keys of a workspace's members (``member``), whose permissions and accounts are read, in the
same lookup, from the workspaces view (projections/workspaces.py), or from the log when the
view has not caught up with the member yet. Member keys are never cached (adapters/http/
auth.py): a removed member's key fails at its next request, in every process."""

from __future__ import annotations

import hashlib
import secrets

import asyncpg
import msgspec

from application.permissions import ROLES, Permission, parse_permissions, permissions_of
from application.ports import EventStore
from application.workspaces import has_account, member_access

_PREFIX = "crm_"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key decides the tenant, never the request body."""

    key_id: str
    # The account acted on: the key's own tenant, or the one a member's request names
    # (adapters/http/permissions.py, ``act_on``).
    user_id: str
    role: str
    workspace_id: str = ""
    # A member's: its stable id, what it may do, the accounts it may act on (None: all of
    # the workspace's). None for the keys of the first release, whose role decides.
    member_id: str | None = None
    permissions: frozenset[Permission] | None = None
    accounts: tuple[str, ...] | None = None

    def may(self, permission: Permission) -> bool:
        return permission in self.held()

    def may_act_on(self, account_id: str) -> bool:
        return self.accounts is None or account_id in self.accounts

    def held(self) -> frozenset[Permission]:
        # A member's role name may be a first-release key kind's too ("auditor"): a member is
        # never judged by its role's name.
        if self.permissions is not None:
            return self.permissions
        return permissions_of(self.role)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_api_key(
    pool: asyncpg.Pool, *, user_id: str, role: str, label: str | None = None
) -> tuple[str, Principal]:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key, key_id = _new_key()
    await pool.execute(
        "INSERT INTO api_keys (key_id, key_hash, user_id, role, label, workspace_id)"
        " VALUES ($1, $2, $3, $4, $5, $3)",
        key_id,
        hash_key(key),
        user_id,
        role,
        label,
    )
    return key, Principal(key_id, user_id, role, workspace_id=user_id)


def _new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(4)
    return f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


# The key and, for a member's, the member as the view has it (NULL columns: not there yet).
_LOOKUP = """
SELECT k.key_id, k.user_id, k.role, k.workspace_id, k.member_id,
       m.status, m.role AS member_role, m.permissions, m.accounts
FROM api_keys k
LEFT JOIN workspace_members m ON m.member_id = k.member_id AND m.workspace_id = k.workspace_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


async def find_principal(
    pool: asyncpg.Pool, key: str, store: EventStore | None = None
) -> Principal | None:
    """The key's holder; a member's from the view, or without it (``store``) from the log."""
    row = await pool.fetchrow(_LOOKUP, hash_key(key))
    if row is None:
        return None
    if row["member_id"] is None:
        return Principal(
            row["key_id"], row["user_id"], row["role"], workspace_id=row["workspace_id"]
        )
    if row["status"] == "active":
        return Principal(
            row["key_id"],
            row["workspace_id"],
            row["member_role"],
            workspace_id=row["workspace_id"],
            member_id=row["member_id"],
            permissions=parse_permissions(row["permissions"]) or frozenset(),
            accounts=tuple(row["accounts"]) if row["accounts"] is not None else None,
        )
    if row["status"] == "removed" or store is None:
        return None
    # The view has not caught up with this member (not there yet, or only invited while its
    # key, made as it joined, exists): the log decides.
    access = await member_access(store, row["workspace_id"], row["member_id"])
    if access is None:
        return None
    return Principal(
        row["key_id"],
        row["workspace_id"],
        access.role,
        workspace_id=access.workspace_id,
        member_id=access.member_id,
        permissions=access.permissions,
        accounts=access.accounts,
    )


async def account_in_workspace(
    pool: asyncpg.Pool, store: EventStore, workspace_id: str, account_id: str
) -> bool:
    """From the workspaces view; a miss is checked in the log (the view may lag)."""
    found = await pool.fetchval(
        "SELECT true FROM workspace_accounts WHERE account_id = $1 AND workspace_id = $2",
        account_id,
        workspace_id,
    )
    return bool(found) or await has_account(store, workspace_id, account_id)


class PostgresMemberKeys:
    """The keys of a workspace's members (application.workspaces.MemberKeys)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, *, workspace_id: str, member_id: str) -> tuple[str, str]:
        key, key_id = _new_key()
        await self._pool.execute(
            "INSERT INTO api_keys (key_id, key_hash, user_id, role, label, workspace_id,"
            " member_id) VALUES ($1, $2, $3, 'member', 'member', $3, $4)",
            key_id,
            hash_key(key),
            workspace_id,
            member_id,
        )
        return key, key_id

    async def delete(self, key_id: str) -> None:
        await self._pool.execute("DELETE FROM api_keys WHERE key_id = $1", key_id)

    async def revoke_member(self, member_id: str) -> None:
        await self._pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE member_id = $1 AND revoked_at IS NULL",
            member_id,
        )


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
