"""Bytes to text for files that came out of Excel, Google Sheets, Numbers or another CRM.

The encoding is decided once, from the first bytes: a BOM (UTF-8, UTF-16 LE/BE) wins; else
UTF-16 without a BOM is recognised by its NUL pattern; else UTF-8 if the first chunk decodes,
else Windows-1252 (what Excel on Windows writes for "CSV"). A file whose start has NUL bytes
or many control characters in any of these is not a spreadsheet export: ``NotText``.

A start in plain ASCII says nothing of the rest: Excel's "CSV" of a list whose first
accented name comes after it is Windows-1252. So such a file is read as strict UTF-8 until
its first non-ASCII character: a valid one settles UTF-8, an undecodable byte switches the
rest of the file to Windows-1252. Once settled, undecodable bytes become U+FFFD and the row
holding them is reported as an error instead of failing the whole file halfway.
"""

from __future__ import annotations

import codecs

SNIFF_BYTES = 4096
_CONTROL_OK = frozenset("\t\n\r\x0c")


class NotText(Exception):
    """The bytes are not a text file in any encoding a spreadsheet exports."""


class StreamDecoder:
    def __init__(self) -> None:
        self._head = b""
        self._decoder: codecs.IncrementalDecoder | None = None
        self.encoding: str | None = None
        self._settled = True
        # Whether any text so far holds U+FFFD (undecodable bytes, or the character itself).
        self.replaced = False

    def feed(self, data: bytes, *, final: bool = False) -> str:
        if self._decoder is None:
            self._head += data
            if len(self._head) < SNIFF_BYTES and not final:
                return ""
            data, self._head = self._head, b""
            self.encoding, skip = sniff_encoding(data)
            # An ASCII start: strict until the encoding shows (see the module's docstring).
            self._settled = not (self.encoding == "utf-8" and data[:SNIFF_BYTES].isascii())
            errors = "replace" if self._settled else "strict"
            self._decoder = codecs.getincrementaldecoder(self.encoding)(errors=errors)
            text = self._decode(data[skip:], final)
            _require_text(text)
        else:
            text = self._decode(data, final)
        if not self.replaced and "\ufffd" in text:
            self.replaced = True
        return text

    def _decode(self, data: bytes, final: bool) -> str:
        assert self._decoder is not None
        if self._settled:
            return self._decoder.decode(data, final)
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as error:
            held = self._decoder.getstate()[0]
            self._settled = True
            if not (held + data)[: error.start].isascii():
                # A valid non-ASCII character came first: UTF-8, with a bad byte after it.
                self._decoder.errors = "replace"
                return self._decoder.decode(data, final)
            # Not UTF-8 before any non-ASCII character was: Windows-1252, from the bytes the
            # UTF-8 decoder still held (the end of the last chunk) on.
            self.encoding = "cp1252"
            self._decoder = codecs.getincrementaldecoder("cp1252")(errors="replace")
            return self._decoder.decode(held + data, final)
        if not text.isascii():
            self._settled = True
            self._decoder.errors = "replace"
        return text


def sniff_encoding(head: bytes) -> tuple[str, int]:
    """(codec name, BOM length) for a file starting with ``head``."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    sample = head[:SNIFF_BYTES]
    if len(sample) >= 4:
        even_nuls = sample[0::2].count(0)
        odd_nuls = sample[1::2].count(0)
        half = len(sample) // 2
        # ASCII text in UTF-16: every other byte is NUL.
        if odd_nuls > half * 0.7 and even_nuls == 0:
            return "utf-16-le", 0
        if even_nuls > half * 0.7 and odd_nuls == 0:
            return "utf-16-be", 0
    try:
        # A multi-byte character may be cut at the end of the sample: ignore only that.
        codecs.getincrementaldecoder("utf-8")().decode(sample, False)
    except UnicodeDecodeError:
        return "cp1252", 0
    return "utf-8", 0


def _require_text(text: str) -> None:
    sample = text[:SNIFF_BYTES]
    if "\x00" in sample:
        raise NotText("the file holds NUL bytes: it is not a CSV text file")
    controls = sum(1 for ch in sample if ch < " " and ch not in _CONTROL_OK)
    if controls > max(2, len(sample) // 100) or sample.count("\ufffd") > len(sample) // 20:
        raise NotText("the file is binary, not a CSV text file")
