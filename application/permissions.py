"""Roles are sets of permissions; code asks for a permission, never compares a role's name.

Two kinds of holder: API keys of the first release (creator, auditor, admin: ``ROLES``), and
the members of a workspace (domain/workspace.py), whose role is a built-in one
(``MEMBER_ROLES``) or one the workspace defined, each a set of the capabilities
``MEMBER_GRANTABLE`` lists.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    # Read the CRM of the account acted on: fans, conversations, messages, campaigns, analytics.
    READ = "crm:read"
    # Create, change and delete fans (and, for keys made before members, every other write:
    # a creator key holds each capability below).
    WRITE = "crm:write"
    # Send messages (and retry, redrive them), open conversations, mark them read.
    SEND = "messages:send"
    # Send a message with a price (a PPV): checked where the price is known.
    SEND_PPV = "messages:send-ppv"
    # Create, launch, pause, resume and cancel campaigns and bulk sends.
    LAUNCH_CAMPAIGNS = "campaigns:launch"
    # Import fans from a file.
    IMPORT = "fans:import"
    # Erase a fan's personal data, for good.
    ERASE = "fans:erase"
    # Invite and remove members, define roles, add accounts to the workspace.
    MANAGE_MEMBERS = "workspace:members"
    # Read the event history within the key's audit scope (application/audit.py).
    AUDIT = "audit:read"
    # Read the history of the tenants this key was granted (`crm apikey create --tenants`).
    AUDIT_GRANTED = "audit:granted"
    # Read the head of the hash chain, which spans every tenant's events.
    AUDIT_CHAIN = "audit:chain"
    # See across tenants and inside the system: the global queue, internal error text.
    OPERATE = "ops:read"

    # The names for the capabilities that kept their first release's value.
    READ_FANS = "crm:read"
    EDIT_FANS = "crm:write"
    READ_AUDIT = "audit:read"


# What a member of a workspace may be given: one account's capabilities, never another
# tenant's history nor the system's insides.
MEMBER_GRANTABLE: frozenset[Permission] = frozenset(
    {
        Permission.READ,
        Permission.WRITE,
        Permission.SEND,
        Permission.SEND_PPV,
        Permission.LAUNCH_CAMPAIGNS,
        Permission.IMPORT,
        Permission.ERASE,
        Permission.MANAGE_MEMBERS,
        Permission.AUDIT,
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    # A creator key is its workspace's owner: every capability, as crm:write meant before.
    "creator": MEMBER_GRANTABLE,
    "auditor": frozenset(
        {Permission.READ, Permission.AUDIT, Permission.AUDIT_GRANTED, Permission.AUDIT_CHAIN}
    ),
    "admin": frozenset(
        {Permission.READ, Permission.AUDIT, Permission.AUDIT_CHAIN, Permission.OPERATE}
    ),
}
ROLES = tuple(ROLE_PERMISSIONS)

MEMBER_ROLES: dict[str, frozenset[Permission]] = {
    "owner": MEMBER_GRANTABLE,
    "manager": MEMBER_GRANTABLE - {Permission.ERASE},
    "chatter": frozenset({Permission.READ, Permission.SEND, Permission.SEND_PPV}),
    "auditor": frozenset({Permission.READ, Permission.AUDIT}),
}


def permissions_of(role: str) -> frozenset[Permission]:
    """An unknown role (a row written by a newer release, say) may do nothing."""
    return ROLE_PERMISSIONS.get(role, frozenset())


_GRANTABLE_BY_VALUE = {p.value: p for p in MEMBER_GRANTABLE}


def parse_permissions(names: list[str] | tuple[str, ...]) -> frozenset[Permission] | None:
    """The permissions named, or None if one is not a member's to hold."""
    by_value = _GRANTABLE_BY_VALUE
    found = {by_value.get(name) for name in names}
    return None if None in found else frozenset(p for p in found if p is not None)
