"""The Workspace aggregate: an agency's creator accounts, the roles it defines, its members.

A workspace is named after the account that founded it, and until its first command its
stream is empty: every tenant of the first release is the one account of a workspace of its
own, with no members, without a single event written for it. The first command on a
workspace founds it (``found``) before deciding.

A member's life: invited (a one-time token whose hash the log keeps, valid until it expires)
-> active (the invite accepted: the member's own API key made) -> removed. Removal also
cancels an invite not yet accepted. An invite is accepted once.

Shifts say who works when: for a member invited or active, on accounts within the member's
own scope (``shift_scope``); each member's shifts are a stream of their own (domain/shift.py),
so that this one stays a few events long however many shifts are worked.

Roles are sets of permission names; a member's permissions are copied from its role when it
is invited, so a member keeps what it was given. A role, once defined, never changes.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Literal

import msgspec
from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import DomainError, Gone, IllegalState, InvalidValue
from domain.shift import shift_accounts

MAX_NAME = 100
MAX_ACCOUNTS = 100


def workspace_stream_id(workspace_id: str) -> str:
    return f"workspace-{workspace_id}"


class InviteUsed(DomainError):
    """The invite was accepted already, has expired, or its member was removed (410)."""


class Member(msgspec.Struct, kw_only=True):
    """One member as the workspace knows it (state rebuilt on replay, not an event); a Struct,
    so that the audit's rendering of the aggregate shows it field by field."""

    member_id: str
    name: str | None
    role: str
    permissions: tuple[str, ...]
    accounts: tuple[str, ...] | None  # None: every account of the workspace
    token_hash: str
    expires_at: datetime
    status: str = "invited"


class Workspace(BaseAggregate[str]):
    @staticmethod
    def create_id(workspace_id: str) -> str:
        return workspace_stream_id(workspace_id)

    class Event(DomainEvent):
        pass

    class Founded(Event, AggregateCreated):
        workspace_id: str

    class AccountAdded(Event):
        account_id: str
        name: str

    class RoleDefined(Event):
        name: str
        permissions: tuple[str, ...]

    class MemberInvited(Event):
        member_id: str
        name: str | None
        role: str
        permissions: tuple[str, ...]
        accounts: tuple[str, ...] | None
        token_hash: str
        expires_at: datetime

    class MemberJoined(Event):
        member_id: str

    class MemberRemoved(Event):
        member_id: str

    @classmethod
    def found(cls, workspace_id: str) -> Workspace:
        return cls(workspace_id=workspace_id)

    @event(Founded)
    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id
        # The founding account belongs to it from the start (every tenant of the first
        # release is the one account of its own workspace).
        self.accounts: list[str] = [workspace_id]
        self.roles: dict[str, tuple[str, ...]] = {}
        self.members: dict[str, Member] = {}

    # --- accounts -----------------------------------------------------------------------

    def add_account(self, account_id: str, name: str) -> None:
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidValue("name", f"must be 1 to {MAX_NAME} characters")
        if account_id in self.accounts:
            raise IllegalState(f"account {account_id} is already in the workspace")
        self._account_added(account_id=account_id, name=name)

    @event(AccountAdded)
    def _account_added(self, account_id: str, name: str) -> None:
        self.accounts.append(account_id)

    # --- roles --------------------------------------------------------------------------

    def define_role(
        self, name: str, permissions: tuple[str, ...], *, builtin: frozenset[str]
    ) -> None:
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidValue("name", f"must be 1 to {MAX_NAME} characters")
        if name in builtin:
            raise InvalidValue("name", "is a built-in role's name")
        if name in self.roles:
            raise IllegalState(f"the role {name!r} exists already (a role never changes)")
        self._role_defined(name=name, permissions=tuple(sorted(set(permissions))))

    @event(RoleDefined)
    def _role_defined(self, name: str, permissions: tuple[str, ...]) -> None:
        self.roles[name] = permissions

    # --- members ------------------------------------------------------------------------

    def invite(
        self,
        *,
        member_id: str,
        name: str | None,
        role: str,
        permissions: tuple[str, ...],
        accounts: tuple[str, ...] | None,
        token_hash: str,
        expires_at: datetime,
    ) -> None:
        """``permissions``: the role's, resolved by the caller from the built-in roles or
        this workspace's (``roles``)."""
        if name is not None and not 0 < len(name) <= MAX_NAME:
            raise InvalidValue("name", f"must be 1 to {MAX_NAME} characters")
        if accounts is not None:
            if not 0 < len(accounts) <= MAX_ACCOUNTS:
                raise InvalidValue(
                    "accounts", f'must name 1 to {MAX_ACCOUNTS} accounts, or be "all"'
                )
            accounts = self._own_accounts(accounts)
        if member_id in self.members:
            raise IllegalState(f"member {member_id} exists already")
        self._member_invited(
            member_id=member_id,
            name=name,
            role=role,
            permissions=tuple(sorted(set(permissions))),
            accounts=accounts,
            token_hash=token_hash,
            expires_at=expires_at,
        )

    @event(MemberInvited)
    def _member_invited(
        self,
        member_id: str,
        name: str | None,
        role: str,
        permissions: tuple[str, ...],
        accounts: tuple[str, ...] | None,
        token_hash: str,
        expires_at: datetime,
    ) -> None:
        self.members[member_id] = Member(
            member_id=member_id,
            name=name,
            role=role,
            permissions=permissions,
            accounts=accounts,
            token_hash=token_hash,
            expires_at=expires_at,
        )

    def accept(self, member_id: str, *, token_hash: str, now: datetime) -> None:
        member = self.members.get(member_id)
        if member is None or not hmac.compare_digest(member.token_hash, token_hash):
            raise Gone(f"invite for member {member_id}")
        if member.status != "invited" or now >= member.expires_at:
            raise InviteUsed(f"the invite of member {member_id} was used or has expired")
        self._member_joined(member_id=member_id)

    @event(MemberJoined)
    def _member_joined(self, member_id: str) -> None:
        self.members[member_id].status = "active"

    def remove(self, member_id: str) -> None:
        member = self.members.get(member_id)
        if member is None or member.status == "removed":
            raise Gone(f"member {member_id}")
        self._member_removed(member_id=member_id)

    @event(MemberRemoved)
    def _member_removed(self, member_id: str) -> None:
        self.members[member_id].status = "removed"

    def active_member(self, member_id: str) -> Member | None:
        member = self.members.get(member_id)
        return member if member is not None and member.status == "active" else None

    # --- shifts -------------------------------------------------------------------------

    def shift_scope(
        self,
        member_id: str,
        accounts: tuple[str, ...] | Literal["all"] | None,
        *,
        now: datetime,
    ) -> tuple[str, ...] | None:
        """The accounts a shift of ``member_id`` may cover (None: all), for a member active or
        invited (and not expired): ``accounts`` names some of the workspace's within the
        member's own, says "all", or is None for the member's own. The shift itself lives on
        the member's stream (domain/shift.py), which refuses overlaps."""
        member = self.members.get(member_id)
        if member is None or not (
            member.status == "active" or (member.status == "invited" and now < member.expires_at)
        ):
            raise InvalidValue("member_id", "is not an active or invited member of the workspace")
        if accounts is not None and accounts != "all":
            accounts = self._own_accounts(accounts)
        return shift_accounts(accounts, member.accounts)

    def _own_accounts(self, accounts: tuple[str, ...]) -> tuple[str, ...]:
        """``accounts`` without repeats, or InvalidValue naming one not of this workspace."""
        outside = [a for a in accounts if a not in self.accounts]
        if outside:
            raise InvalidValue("accounts", f"not an account of this workspace: {outside[0]}")
        return tuple(dict.fromkeys(accounts))
