"""moto's SQS in server mode, on a free loopback port, for tests of the SQS adapter.

Server mode (rather than moto's in-process mock) because aiobotocore sends its requests through
aiohttp, which the mock does not intercept. moto scans every message of a queue on each call,
so it serves small functional tests, never a load.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# moto accepts any credentials; fixed ones keep the tests from reading the developer's own.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto in a thread of this process; yields its endpoint URL."""
    # Port 0: the OS picks a free port, which get_host_and_port then reports.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
