"""One file field out of a multipart/form-data body, streamed as it arrives.

Litestar's own multipart parsing reads the whole body first; a spreadsheet of a million rows
must not sit in memory, so the upload is parsed here from ``request.stream()``: only the
current chunk and a tail the length of the boundary are ever held. Other fields are skipped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import unquote

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_PARAM = re.compile(r'(\w+\*?)=(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')
MAX_HEADER_BYTES = 16_384


class MultipartError(Exception):
    """The body is not the multipart/form-data it claims to be, or lacks the field."""


def boundary_of(content_type: str) -> bytes:
    if not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError("send the file as multipart/form-data with a field named 'file'")
    match = _BOUNDARY.search(content_type)
    if not match:
        raise MultipartError("the multipart/form-data content type has no boundary")
    return (match.group(1) or match.group(2)).encode("latin-1")


class FilePart:
    """``await part.open()`` finds the field; then ``async for chunk in part.content()``."""

    def __init__(self, body: AsyncIterator[bytes], boundary: bytes, field: str = "file") -> None:
        self._body = body.__aiter__()
        self._field = field
        self._delimiter = b"\r\n--" + boundary
        # The first boundary has no line break before it: lend it one so every one matches.
        self._buffer = b"\r\n"
        self._ended = False
        self.filename: str | None = None

    async def open(self) -> None:
        while True:
            await self._skip_to_delimiter()
            if not await self._next_part():
                raise MultipartError(f"the form has no field named '{self._field}'")
            name, filename = await self._part_headers()
            if name == self._field:
                self.filename = filename
                return

    async def content(self) -> AsyncIterator[bytes]:
        keep = len(self._delimiter) - 1
        while True:
            index = self._buffer.find(self._delimiter)
            if index >= 0:
                if index:
                    yield self._buffer[:index]
                self._buffer = self._buffer[index:]
                return
            if len(self._buffer) > keep:
                yield self._buffer[:-keep]
                self._buffer = self._buffer[-keep:]
            if not await self._more():
                raise MultipartError("the body ends inside the file (upload cut short)")

    async def _skip_to_delimiter(self) -> None:
        keep = len(self._delimiter) - 1
        while (index := self._buffer.find(self._delimiter)) < 0:
            self._buffer = self._buffer[-keep:]
            if not await self._more():
                raise MultipartError(f"the form has no field named '{self._field}'")
        self._buffer = self._buffer[index + len(self._delimiter) :]

    async def _next_part(self) -> bool:
        """After a delimiter: False at the closing one ('--'), else past its line break."""
        while len(self._buffer) < 2:
            if not await self._more():
                return False
        if self._buffer.startswith(b"--"):
            return False
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES or not await self._more():
                raise MultipartError("malformed multipart boundary line")
        self._buffer = self._buffer[end + 2 :]
        return True

    async def _part_headers(self) -> tuple[str | None, str | None]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES or not await self._more():
                raise MultipartError("malformed multipart part headers")
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                params = {
                    m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                    for m in _PARAM.finditer(value)
                }
                filename = params.get("filename")
                if "filename*" in params:
                    filename = unquote(params["filename*"].split("''", 1)[-1])
                return params.get("name"), filename
        return None, None

    async def _more(self) -> bool:
        if self._ended:
            return False
        try:
            chunk = await self._body.__anext__()
        except StopAsyncIteration:
            self._ended = True
            return False
        self._buffer += chunk
        return True
