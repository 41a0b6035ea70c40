"""Where an export writes: a local folder, or ``s3://bucket/prefix`` through the AWS
configuration the rest of fancrm uses (credentials from the environment, ``AWS_REGION``;
``AWS_ENDPOINT_URL_S3`` for another endpoint, which botocore reads itself)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol


class Destination(Protocol):
    async def read(self, name: str) -> bytes | None: ...

    async def write(self, name: str, data: bytes) -> None:
        """``name`` (a relative path with ``/``) holds ``data`` whole or not at all."""
        ...


class LocalFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def read(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.exists() else None

    async def write(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)


class S3Prefix:
    """A PUT replaces an object whole, so no temporary names are needed."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}" if self._prefix else name

    async def read(self, name: str) -> bytes | None:
        try:
            found = await self._client.get_object(Bucket=self._bucket, Key=self._key(name))
        except self._client.exceptions.NoSuchKey:
            return None
        async with found["Body"] as body:
            data: bytes = await body.read()
        return data

    async def write(self, name: str, data: bytes) -> None:
        await self._client.put_object(Bucket=self._bucket, Key=self._key(name), Body=data)


@asynccontextmanager
async def open_destination(
    to: str, region_name: str | None = None, **client_options: Any
) -> AsyncIterator[Destination]:
    if not to.startswith("s3://"):
        yield LocalFolder(Path(to))
        return
    from aiobotocore.session import get_session

    bucket, _, prefix = to.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{to} names no bucket")
    async with get_session().create_client(
        "s3", region_name=region_name, **client_options
    ) as client:
        yield S3Prefix(client, bucket, prefix)
