"""Column names as people and other tools write them, mapped to fan fields.

A header is compared without case, accents, spaces or punctuation ("E-mail", "Émail",
"e_mail" are one name). A header that is no alias as written is looked up again without its
trailing parenthesised or bracketed notes and without currency words or symbols ("Total Spent
(USD)", "Lifetime Value ($)", "Total spent [EUR]", "Email (primary)"). Unknown columns are
ignored (and listed); a column named twice keeps its first occurrence. Required: a handle or
a platform id, the keys a fan is matched by.

Platform exports (issue 20). Patreon's members CSV (Name, Email, Patron Status, Lifetime
Amount, Pledge Amount, Tier, Patronage Since Date, User ID, ...) is recognised by its own
column names, and its fans are then Patreon's: "User ID" is the Patreon user id, as the API
sync names a member's fan (application/patreon.py), "Lifetime Amount" the value, "Tier" the
tags, "Patronage Since Date" the subscription day; "Pledge Amount" (this month's, not a
total) is not read. Fansly publishes no list of its export's columns that we could find:
its usual names (Username, Display Name, Subscribed Since, Total Spent) are aliases, but they
are the same as OnlyFans' tools write, so a file is taken as Fansly's only when a column names
Fansly ("Fansly ID", "Fansly Username"); otherwise a Platform column, or OnlyFans, decides.
"""

from __future__ import annotations

import re
import unicodedata

import msgspec

_ALIASES: dict[str, tuple[str, ...]] = {
    "handle": (
        "handle",
        "username",
        "user name",
        "user",
        "onlyfans username",
        "of username",
        "fan username",
        "fan handle",
        "screen name",
        "login",
        "pseudo",
        "nickname",
        "fansly username",
        "fansly handle",
    ),
    "platform_id": (
        "platform id",
        "platformid",
        "user id",
        "userid",
        "fan id",
        "onlyfans id",
        "of id",
        "id",
        "external id",
        "subscriber id",
        "fansly id",
        "fansly user id",
        "patreon user id",
    ),
    "name": ("name", "display name", "displayname", "full name", "fan name", "nom", "nombre"),
    "email": ("email", "e-mail", "email address", "mail", "courriel", "correo"),
    "value": (
        "total spent",
        "lifetime value",
        "value",
        "spent",
        "total spend",
        "ltv",
        "revenue",
        "amount spent",
        "total",
        "total earnings",
        "lifetime spend",
        "montant",
        "lifetime amount",
    ),
    "value_cents": ("value cents", "valuecents", "total spent cents", "lifetime value cents"),
    "tags": ("tags", "tag", "labels", "label", "lists", "list", "etiquettes", "tier"),
    "notes": ("notes", "note", "comments", "comment", "commentaire", "commentaires"),
    "subscribed_at": (
        "subscribed",
        "subscribed at",
        "subscribed on",
        "subscription date",
        "subscribe date",
        "subscribed date",
        "joined",
        "joined at",
        "joined on",
        "join date",
        "date joined",
        "first subscribed",
        "since",
        "joined date",
        "subscription start",
        "subscription start date",
        "subscribed since",
        "fan since",
        "member since",
        "date d'abonnement",
        "patronage since date",
        "patronage since",
    ),
    "platform": ("platform", "source", "plateforme"),
}


def normalise_header(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lstrip("\ufeff"))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in plain.casefold() if ch.isalnum())


ALIASES: dict[str, str] = {
    normalise_header(alias): field for field, names in _ALIASES.items() for alias in names
}
# What a header may carry besides its name: notes in brackets at its end, and a currency.
_DECORATIONS = re.compile(
    r"(?:\s*(?:\([^()]*\)|\[[^\[\]]*\]))+\s*$"
    r"|[$€£¥]"
    r"|(?i:\b(?:in\s+)?(?:usd|eur|gbp|cad|aud|dollars?|euros?)\b)"
)


def field_of(header: str, aliases: dict[str, str] = ALIASES) -> str | None:
    """The field a column name stands for among ``aliases`` (the fan fields'), or None."""
    field = aliases.get(normalise_header(header))
    if field is None:
        plain = _DECORATIONS.sub(" ", header)
        if plain != header:
            field = aliases.get(normalise_header(plain))
    return field


def aliases_of(field: str) -> tuple[str, ...]:
    """The names a fan field's column goes by: a transactions file names its fan alike."""
    return _ALIASES[field]


REQUIRED_ANY = ("handle", "platform_id")


class MissingColumns(Exception):
    def __init__(self, missing: list[str], found: list[str], *, needs: str | None = None) -> None:
        needs = needs or "the file needs a column for the fan's handle (username) or platform id"
        super().__init__(f"{needs}; found: {', '.join(found) or 'no columns'}")
        self.missing = missing
        self.found = found


class ColumnMap(msgspec.Struct, frozen=True):
    """Fan field -> column index, and the column names nobody reads."""

    columns: dict[str, int]
    ignored: tuple[str, ...]
    # Fan field -> the column's name as the file writes it.
    names: dict[str, str] = {}
    # The platform the whole file comes from, when its columns say (a row's Platform cell,
    # if any, still decides for that row).
    platform: str | None = None


# Columns only Patreon's members export has: two of them make a file Patreon's.
_PATREON_COLUMNS = frozenset(
    normalise_header(name)
    for name in (
        "Patron Status",
        "Lifetime Amount",
        "Pledge Amount",
        "Patronage Since Date",
        "Charge Frequency",
        "Last Charge Status",
        "Follows You",
    )
)


def detect_platform(header: list[str]) -> str | None:
    names = {normalise_header(name) for name in header}
    if len(names & _PATREON_COLUMNS) >= 2:
        return "patreon"
    if any(name.startswith("fansly") for name in names):
        return "fansly"
    return None


def map_columns(header: list[str]) -> ColumnMap:
    columns: dict[str, int] = {}
    names: dict[str, str] = {}
    ignored = []
    for index, name in enumerate(header):
        field = field_of(name)
        if field is None:
            if name.strip():
                ignored.append(name.strip())
        elif field not in columns:
            columns[field] = index
            names[field] = name.strip()
    if not any(field in columns for field in REQUIRED_ANY):
        raise MissingColumns(["handle", "platformId"], [name.strip() for name in header])
    return ColumnMap(columns, tuple(ignored), names, detect_platform(header))
