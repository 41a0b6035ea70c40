"""AES-256-GCM for personal data: a master key wraps one data key per subject (a fan), and
each data key encrypts that subject's personal fields. Destroying a subject's data key makes
every copy of its personal data unreadable, in the log, in backups and in dumps alike."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_CHECK_TOKEN = b"fancrm master key check"


class MasterKeyError(Exception):
    """The master key is missing, malformed, or not the one the data was wrapped with."""


class MasterKey:
    """The key-encryption key, from CRM_MASTER_KEY (32 bytes, base64). Never logged."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise MasterKeyError(f"a master key is {KEY_BYTES} bytes, got {len(raw)}")
        self._aead = AESGCM(raw)
        # Identifies which master key wrapped a data key, without revealing the key.
        self.key_id = hashlib.sha256(b"fancrm key id" + raw).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str) -> MasterKey:
        try:
            raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
        except (binascii.Error, ValueError):
            raise MasterKeyError("CRM_MASTER_KEY is not valid base64") from None
        return cls(raw)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id})"

    def wrap(self, subject: str, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, b"wrap:" + subject.encode())

    def unwrap(self, subject: str, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], b"wrap:" + subject.encode()
            )
        except InvalidTag:
            raise MasterKeyError(f"cannot unwrap the data key of {subject}") from None

    def check_token(self) -> bytes:
        return self.wrap("check", _CHECK_TOKEN)

    def verifies(self, token: bytes) -> bool:
        try:
            return self.unwrap("check", token) == _CHECK_TOKEN
        except MasterKeyError:
            return False


def generate_master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(aead: AESGCM, plaintext: bytes, context: bytes) -> str:
    """Encrypt with a fresh nonce; ``context`` (subject and event id) is bound as AAD so a
    ciphertext cannot be moved to another event or subject."""
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + aead.encrypt(nonce, plaintext, context)).decode()


def unseal(aead: AESGCM, sealed: str, context: bytes) -> bytes:
    raw = base64.b64decode(sealed)
    return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
