"""Column names as people and other tools write them, mapped to fan fields.

A header is compared without case, accents, spaces or punctuation ("E-mail", "Émail",
"e_mail" are one name). A header that is no alias as written is looked up again without its
trailing parenthesised or bracketed notes and without currency words or symbols ("Total Spent
(USD)", "Lifetime Value ($)", "Total spent [EUR]", "Email (primary)"). Unknown columns are
ignored (and listed); a column named twice keeps its first occurrence. Required: a handle or
a platform id, the keys a fan is matched by.
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
    ),
    "value_cents": ("value cents", "valuecents", "total spent cents", "lifetime value cents"),
    "tags": ("tags", "tag", "labels", "label", "lists", "list", "etiquettes"),
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


def field_of(header: str) -> str | None:
    """The fan field a column name stands for, or None."""
    field = ALIASES.get(normalise_header(header))
    if field is None:
        plain = _DECORATIONS.sub(" ", header)
        if plain != header:
            field = ALIASES.get(normalise_header(plain))
    return field


REQUIRED_ANY = ("handle", "platform_id")


class MissingColumns(Exception):
    def __init__(self, missing: list[str], found: list[str]) -> None:
        super().__init__(
            "the file needs a column for the fan's handle (username) or platform id;"
            f" found: {', '.join(found) or 'no columns'}"
        )
        self.missing = missing
        self.found = found


class ColumnMap(msgspec.Struct, frozen=True):
    """Fan field -> column index, and the column names nobody reads."""

    columns: dict[str, int]
    ignored: tuple[str, ...]
    # Fan field -> the column's name as the file writes it.
    names: dict[str, str] = {}


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
    return ColumnMap(columns, tuple(ignored), names)
