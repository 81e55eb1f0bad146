"""The standard-library client of the control socket against servers that answer in every
shape HTTP allows, and some it does not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.waiting import until
from ytpiped import control_client

BODY = b'{"videos": {"total": 3}}'


@contextlib.asynccontextmanager
async def serving(data: Path, answer: bytes | None) -> AsyncIterator[list[bytes]]:
    """A server on DATA/ytpiped.sock that reads one request and sends `answer` (None: says
    nothing until the client gives up); yields the requests it read."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        if answer is None:
            await reader.read()  # until the client hangs up
        else:
            writer.write(answer)
            await writer.drain()
        writer.close()

    data.mkdir(exist_ok=True)
    server = await asyncio.start_unix_server(handle, path=str(data / control_client.SOCKET_NAME))
    async with server:
        yield requests


def _head(*headers: str, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()


@pytest.mark.parametrize("answer", [
    _head(f"Content-Length: {len(BODY)}", "Content-Type: application/json") + BODY,
    _head() + BODY,  # no length: the body runs to the end of the connection
    _head("Transfer-Encoding: chunked") + b"5\r\n" + BODY[:5] + b"\r\n"
    + f"{len(BODY) - 5:x};ext=1\r\n".encode() + BODY[5:] + b"\r\n0\r\n\r\n",
    _head(f"content-length: {len(BODY)}") + BODY + b"trailing bytes are not the body",
])
async def test_reads_the_body_of_a_200_answer(tmp_path: Path, answer: bytes) -> None:
    async with serving(tmp_path, answer) as requests:
        got = await asyncio.to_thread(control_client.get, tmp_path, "/status")
    assert got == BODY
    assert requests[0].startswith(b"GET /status HTTP/1.1\r\n")
    assert b"Host: ytpiped\r\n" in requests[0] and b"Connection: close\r\n" in requests[0]


@pytest.mark.parametrize("answer", [
    _head("Content-Length: 9", status="404 Not Found") + b"not found",
    _head("Content-Length: 500") + BODY,  # cut short
    _head("Transfer-Encoding: chunked") + b"ff\r\n" + BODY,  # cut short
    _head("Transfer-Encoding: chunked") + b"zz\r\n",
    b"garbage without a blank line",
    b"",
])
async def test_anything_but_a_whole_200_answer_is_none(tmp_path: Path, answer: bytes) -> None:
    async with serving(tmp_path, answer):
        assert await asyncio.to_thread(control_client.get, tmp_path) is None


async def test_a_daemon_that_never_answers_is_none_after_the_timeout(tmp_path: Path) -> None:
    async with serving(tmp_path, None) as requests:
        assert await asyncio.to_thread(control_client.get, tmp_path, "/status", 0.2) is None
        # the request was sent (the server may read it only after the client gave up)
        await until(lambda: len(requests) == 1, "the request read by the server")


def test_no_socket_or_a_stale_one_is_none(tmp_path: Path) -> None:
    assert control_client.get(tmp_path) is None
    (tmp_path / control_client.SOCKET_NAME).write_text("")  # a file left where it was
    assert control_client.get(tmp_path) is None
