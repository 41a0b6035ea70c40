"""The streaming multipart reader: the file field out of any chunking of a form body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.csv_import.multipart import FilePart, MultipartError, boundary_of

BOUNDARY = "----formdata-7d1"


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    body = b"preamble to ignore\r\n"
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += (
            (
                f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: text/csv\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    return body + f"--{BOUNDARY}--\r\n".encode()


async def _chunks(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in sizes:
        yield data[start : start + size]
        start += size
    if start < len(data):
        yield data[start:]


def read_file(body: bytes, sizes: list[int]) -> tuple[str | None, bytes]:
    async def run() -> tuple[str | None, bytes]:
        part = FilePart(
            _chunks(body, sizes), boundary_of(f"multipart/form-data; boundary={BOUNDARY}")
        )
        await part.open()
        return part.filename, b"".join([chunk async for chunk in part.content()])

    return asyncio.run(run())


CONTENT = b'handle,notes\r\nann,"--not a boundary\r\n--' + BOUNDARY[:-1].encode() + b'"\r\n'


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=23), max_size=40))
def test_the_file_field_reads_the_same_however_the_body_is_chunked(sizes: list[int]) -> None:
    body = form(("note", None, b"hello"), ("file", "fans.csv", CONTENT), ("after", None, b"x"))
    assert read_file(body, sizes) == ("fans.csv", CONTENT)


def test_a_form_without_the_file_field_is_refused() -> None:
    with pytest.raises(MultipartError, match="no field named 'file'"):
        read_file(form(("other", "a.csv", b"x")), [])


def test_a_body_cut_inside_the_file_is_refused() -> None:
    body = form(("file", "a.csv", CONTENT))

    async def run() -> None:
        part = FilePart(_chunks(body[:-40], []), BOUNDARY.encode())
        await part.open()
        async for _ in part.content():
            pass

    with pytest.raises(MultipartError, match="cut short"):
        asyncio.run(run())


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data", "text/csv; boundary=x"]
)
def test_only_multipart_form_data_with_a_boundary_is_accepted(content_type: str) -> None:
    with pytest.raises(MultipartError):
        boundary_of(content_type)


def test_a_quoted_boundary_and_a_utf8_file_name_are_understood() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"

    async def run() -> str | None:
        body = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="x";'
            b" filename*=UTF-8''f%C3%A4ns.csv\r\n\r\nhandle\r\n--b--\r\n"
        )
        part = FilePart(_chunks(body, []), b"b")
        await part.open()
        return part.filename

    assert asyncio.run(run()) == "fäns.csv"
