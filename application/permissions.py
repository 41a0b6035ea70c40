"""Roles are sets of permissions; code asks for a permission, never compares a role's name.

One table decides what each kind of key may do. An agency's members (owners, managers,
chatters with per-account scopes) will be more rows here, not more ``if role == ...``.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    # Read the CRM of the key's own tenant: fans, conversations, messages, campaigns, analytics.
    READ = "crm:read"
    # Run commands on the key's own tenant: create, change, send, import, erase.
    WRITE = "crm:write"
    # Read the event history within the key's audit scope (application/audit.py).
    AUDIT = "audit:read"
    # Read the history of the tenants this key was granted (`crm apikey create --tenants`).
    AUDIT_GRANTED = "audit:granted"
    # Read the head of the hash chain, which spans every tenant's events.
    AUDIT_CHAIN = "audit:chain"
    # See across tenants and inside the system: the global queue, internal error text.
    OPERATE = "ops:read"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "creator": frozenset({Permission.READ, Permission.WRITE, Permission.AUDIT}),
    "auditor": frozenset(
        {Permission.READ, Permission.AUDIT, Permission.AUDIT_GRANTED, Permission.AUDIT_CHAIN}
    ),
    "admin": frozenset(
        {Permission.READ, Permission.AUDIT, Permission.AUDIT_CHAIN, Permission.OPERATE}
    ),
}
ROLES = tuple(ROLE_PERMISSIONS)


def permissions_of(role: str) -> frozenset[Permission]:
    """An unknown role (a row written by a newer release, say) may do nothing."""
    return ROLE_PERMISSIONS.get(role, frozenset())
