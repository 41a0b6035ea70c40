"""Encrypt the personal fields of events on their way into the log, decrypt them on the way
out, driven by ``domain.events.PERSONAL_DATA``. Domain code and projectors see plain values.

A stored event keeps its clear fields as they are and holds its personal fields, together, in
one ``_pii`` value: AES-256-GCM under the subject's data key, with the subject and the event id
as associated data. One encryption per event keeps the cost small; once the subject's key is
destroyed the fields read back as None and the event is reported with them erased.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Any
from uuid import UUID

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto import seal, unseal
from adapters.postgres.subject_keys import ERASED, SubjectErased, SubjectKeys
from domain.events import ERASES_SUBJECT, PERSONAL_DATA, PersonalData
from domain.fan import fan_stream_id

PII = "_pii"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

# (subject, sealed value): whose key opens an event's sealed personal fields, and them.
# A plain tuple: made for most events of a replay, where a NamedTuple costs several times more.
SealedFields = tuple[str, str]


def subject_of(spec: PersonalData | None, event_type: str, stream_id: str, fields: Any) -> str:
    if spec is None or spec.subject_field is None:
        return stream_id
    return fan_stream_id(int(fields[spec.subject_field]))


class PendingKeys:
    """What an append changes in the key table: keys stored with it (subject -> the key and
    its wrapped form), and subjects whose key it destroys."""

    def __init__(self) -> None:
        self.new_keys: dict[str, tuple[AESGCM, bytes]] = {}
        self.erased_subjects: set[str] = set()


class PersonalDataCodec:
    def __init__(self, keys: SubjectKeys | None) -> None:
        # None turns encryption off: only for measuring its cost (bench/append.py).
        self.keys = keys

    async def protect(
        self,
        conn: Any,
        stream_id: str,
        expected_version: int,
        items: list[tuple[str, UUID, dict[str, Any]]],
        known: dict[str, AESGCM | None] | None = None,
        looked_up: Set[str] = frozenset(),
        *,
        new_stream_keyless: bool = True,
    ) -> PendingKeys:
        """Replace personal fields of (event type, event id, fields) items in place.

        ``known``: keys already at hand (an append of many streams looks them up at once, and
        shares the new ones it makes); ``looked_up``: subjects already asked for, so those
        absent from ``known`` have no key yet."""
        pending = PendingKeys()
        for event_type, _, fields in items:
            if event_type in ERASES_SUBJECT:
                pending.erased_subjects.add(subject_of(None, event_type, stream_id, fields))
        if self.keys is None:
            return pending
        # (event id, fields, spec, subject): the subject is worked out once per event.
        personal = []
        for event_type, event_id, fields in items:
            spec = PERSONAL_DATA.get(event_type)
            if spec is not None:
                subject = subject_of(spec, event_type, stream_id, fields)
                personal.append((event_id, fields, spec, subject))
        if not personal:
            return pending
        subjects = {subject for *_, subject in personal}
        known = known or {}
        aeads: dict[str, AESGCM | None] = {s: known[s] for s in subjects if s in known}
        # A stream's first event needs no lookup: its subject has no key yet, unless another
        # stream's event made it first (``new_stream_keyless`` False: the store's second try).
        skipped = {stream_id} if expected_version == 0 and new_stream_keyless else set()
        wanted = subjects - aeads.keys() - looked_up - skipped
        if wanted:
            aeads.update(await self.keys.load(conn, wanted))
        for subject in subjects - aeads.keys():
            # Stored by the append statement itself, only if the events go in; a concurrent
            # append that made the same subject's key first makes this one fail and retry.
            pending.new_keys[subject] = self.keys.new_key(subject)
            aeads[subject] = pending.new_keys[subject][0]
        for event_id, fields, spec, subject in personal:
            aead = aeads[subject]
            if aead is ERASED:
                raise SubjectErased(subject)
            values = {name: fields.pop(name) for name in spec.fields}
            if any(value is not None for value in values.values()):
                fields[PII] = seal(aead, _encode(values), _context(subject, event_id))
        return pending

    def seals_alone(self, event_type: str) -> bool:
        """Whether ``seal_new_streams`` can take a new stream's event of this type: the event
        does not destroy a key, and its personal fields (if any) are its own stream's."""
        spec = PERSONAL_DATA.get(event_type)
        return (
            self.keys is not None
            and event_type not in ERASES_SUBJECT
            and (spec is None or spec.subject_field is None)
        )

    def seal_new_streams(
        self, items: list[tuple[str, str, UUID, dict[str, Any]]]
    ) -> list[tuple[str, bytes]]:
        """``protect`` for many new streams (expected version 0) of one event each, at once:
        (stream id, event type, event id, fields) items, every type ``seals_alone``. Makes
        each stream's data key, seals the personal fields in place; returns (subject, wrapped
        key) for the keys to store with the events (never cached: see ``PendingKeys``)."""
        assert self.keys is not None
        new_key = self.keys.new_key
        made: list[tuple[str, bytes]] = []
        for stream_id, event_type, event_id, fields in items:
            spec = PERSONAL_DATA.get(event_type)
            if spec is None:
                continue
            aead, wrapped = new_key(stream_id)
            made.append((stream_id, wrapped))
            pop = fields.pop
            values = {name: pop(name) for name in spec.fields}
            if list(values.values()).count(None) != len(values):
                fields[PII] = seal(aead, _encode(values), f"{stream_id}|{event_id}".encode())
        return made

    async def seal_body(
        self,
        conn: Any,
        body: dict[str, Any],
        subject: str | None,
        personal: dict[str, Any],
        known: dict[str, AESGCM | None] | None = None,
    ) -> str:
        """A queue message body with its personal fields sealed under the subject's key
        (taken from ``known`` when it is there)."""
        if personal:
            if self.keys is None or subject is None:
                body = {**body, **personal}
            else:
                if known is not None and subject in known:
                    aead = known[subject]
                else:
                    aead = (await self.keys.load(conn, [subject])).get(subject, ERASED)
                if aead is None:
                    raise SubjectErased(subject)
                context = f"{subject}|{body.get('messageId', '')}".encode()
                body = {**body, PII: seal(aead, _encode(personal), context)}
        return _encode(body).decode()

    async def open_body(self, conn: Any, body: dict[str, Any], subject: str) -> dict[str, Any]:
        """The personal fields of a queue message body (None if the subject was erased)."""
        sealed = body.get(PII)
        if sealed is None:
            return {}
        if self.keys is None:
            raise SubjectErased("encryption is off but the message is sealed")
        aead = (await self.keys.load(conn, [subject])).get(subject, ERASED)
        if aead is None:
            raise SubjectErased(subject)
        context = f"{subject}|{body.get('messageId', '')}".encode()
        return dict(_decode(unseal(aead, sealed, context)))

    @property
    def master_key_id(self) -> str | None:
        return self.keys.master.key_id if self.keys is not None else None

    def committed(self, pending: PendingKeys) -> None:
        """The append went in: cache the keys it stored, forget the ones it destroyed."""
        if self.keys is None:
            return
        for subject, (aead, _) in pending.new_keys.items():
            self.keys.remember(subject, aead)
        for subject in pending.erased_subjects:
            self.keys.remember(subject, ERASED)

    async def keys_for(self, conn: Any, rows: list[Any]) -> dict[str, AESGCM | None]:
        """The keys that decrypting these rows needs, loaded in at most one query."""
        subjects = {
            subject_of(PERSONAL_DATA[row["event_type"]], "", row["stream_id"], row["data"])
            for row in rows
            if PII in row["data"]
        }
        return await self._load_keys(conn, rows, subjects)

    async def keys_for_sealed(
        self, conn: Any, rows: list[Any], sealed: list[SealedFields | None]
    ) -> dict[str, AESGCM | None]:
        """``keys_for`` rows whose data was read as text, given their ``sealed_in``."""
        return await self._load_keys(conn, rows, {f[0] for f in sealed if f is not None})

    async def _load_keys(
        self, conn: Any, rows: list[Any], subjects: set[str]
    ) -> dict[str, AESGCM | None]:
        if not subjects:
            return {}
        if self.keys is None:
            raise SubjectErased("encryption is off but the log holds encrypted fields")
        # A key cached before another process erased its subject would still decrypt; a read
        # that meets the erasing event itself must not, so it wins over the cache.
        erased = {row["stream_id"] for row in rows if row["event_type"] in ERASES_SUBJECT}
        for subject in erased & subjects:
            self.keys.remember(subject, ERASED)
        return await self.keys.load(conn, subjects)

    @staticmethod
    def sealed_in(event_type: str, stream_id: str, data: str) -> SealedFields | None:
        """The sealed personal fields of a stored event read as JSON text, and whose key
        opens them; None if nothing is sealed."""
        spec = PERSONAL_DATA.get(event_type)
        # Most events hold no personal data, or hold it in clear: no parsing for those.
        if spec is None or _PII_KEY not in data:
            return None
        if spec.subject_field is None and data.startswith(_SEALED_FIRST):
            # jsonb writes the shortest keys first: a sealed event's text begins with its
            # sealed value, which is base64 (no quote, no escape) and ends at the next quote.
            return stream_id, data[_SEALED_AT : data.index('"', _SEALED_AT)]
        found = _sealed_decoder(event_type, spec)(data)
        if found.sealed is None:
            return None
        subject = stream_id if spec.subject_field is None else fan_stream_id(int(found.subject))
        return subject, found.sealed

    @staticmethod
    def reveal_json(
        event_type: str,
        sealed: SealedFields | None,
        event_id: UUID,
        keys: dict[str, AESGCM | None],
    ) -> tuple[str, str, tuple[str, ...]]:
        """``reveal`` for ``codec.decode_event_json``: the personal fields as JSON members to
        put before and after the stored ones (later members win), and the erased fields.
        The same outcome as ``reveal``: absent personal fields are None, and stored clear
        values win over that default; decrypted values (or None, once erased) win over all."""
        personal = _PERSONAL_JSON.get(event_type)
        if personal is None:
            return "", "", ()
        fields, nones = personal
        if sealed is None:
            return nones, "", ()
        subject, value = sealed
        aead = keys.get(subject, ERASED)
        if aead is ERASED:
            return "", nones, fields
        plain = unseal(aead, value, f"{subject}|{event_id}".encode()).decode()
        # A JSON object sealed by ``protect``: its members follow the defaults, so they win.
        return "", nones + "," + plain[1:-1] if len(plain) > 2 else nones, ()

    @staticmethod
    def reveal(
        event_type: str,
        stream_id: str,
        event_id: UUID,
        data: dict[str, Any],
        keys: dict[str, AESGCM | None],
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Plain fields of a stored event, and the personal fields that were erased."""
        spec = PERSONAL_DATA.get(event_type)
        if spec is None:
            return data, ()
        sealed = data.pop(PII, None)
        plain = dict.fromkeys(spec.fields)
        if sealed is None:
            # Nothing sealed: personal fields that were all empty, or stored in clear (written
            # with encryption off); what is there wins over the defaults.
            return {**plain, **data}, ()
        subject = subject_of(spec, event_type, stream_id, data)
        aead = keys.get(subject, ERASED)
        if aead is ERASED:
            return {**data, **plain}, spec.fields
        plain.update(_decode(unseal(aead, sealed, _context(subject, event_id))))
        return {**data, **plain}, ()


_PII_KEY = f'"{PII}"'
_SEALED_FIRST = f'{{"{PII}": "'
_SEALED_AT = len(_SEALED_FIRST)
_sealed_decoders: dict[str, Callable[[str], Any]] = {}
# event type -> (its personal fields, those fields all None as JSON object members)
_PERSONAL_JSON: dict[str, tuple[tuple[str, ...], str]] = {
    event_type: (spec.fields, _encode(dict.fromkeys(spec.fields)).decode()[1:-1])
    for event_type, spec in PERSONAL_DATA.items()
}


def _sealed_decoder(event_type: str, spec: PersonalData) -> Callable[[str], Any]:
    decode = _sealed_decoders.get(event_type)
    if decode is None:
        # Only the sealed value and the subject's field are read; the rest is skipped.
        shape = msgspec.defstruct(
            f"Sealed{event_type}",
            [
                ("sealed", str | None, msgspec.field(name=PII, default=None)),
                ("subject", Any, msgspec.field(name=spec.subject_field or "_", default=None)),
            ],
        )
        decode = _sealed_decoders[event_type] = msgspec.json.Decoder(shape).decode
    return decode


def _context(subject: str, event_id: UUID) -> bytes:
    return f"{subject}|{event_id}".encode()
