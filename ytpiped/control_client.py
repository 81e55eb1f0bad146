"""The client side of the control API: one GET over DATA/ytpiped.sock with the standard
library alone.

`ytpiped status` asks the running daemon through this. A command-line process must not
pay for an HTTP client library: importing aiohttp's costs about 0.3 s, more than the whole
answer takes; this module imports `socket` and nothing else of note.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from ytpiped.paths import SOCKET

SOCKET_NAME = SOCKET
#: answers larger than this are refused (the status JSON is a few KiB)
MAX_ANSWER_BYTES = 64 * 2**20


def get(data_dir: Path, path: str = "/status", timeout_s: float = 2.0) -> bytes | None:
    """The body of the daemon's 200 answer to GET `path`; None when no daemon listens, it
    answers something else, or the whole exchange takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    request = (f"GET {path} HTTP/1.1\r\nHost: ytpiped\r\nConnection: close\r\n"
               "Accept-Encoding: identity\r\n\r\n").encode("ascii")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(data_dir / SOCKET_NAME))
            sock.sendall(request)
            return _read_answer(sock, deadline)
    except (OSError, ValueError):  # no socket, refused, timed out, reset; a garbled answer
        return None


def _recv(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the daemon did not answer in time")
    sock.settimeout(left)
    return sock.recv(65536)


def _read_answer(sock: socket.socket, deadline: float) -> bytes | None:
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = _recv(sock, deadline)
        if not chunk or len(buf) > 65536:
            return None
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    if status_line.split(" ")[1:2] != ["200"]:
        return None
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = bytearray(rest)
    length = int(headers["content-length"]) if "content-length" in headers else None
    while length is None or len(body) < length:
        chunk = _recv(sock, deadline)
        if not chunk:
            break
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            return None
    if length is not None:
        return bytes(body[:length]) if len(body) >= length else None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return _dechunk(bytes(body))
    return bytes(body)


def _dechunk(data: bytes) -> bytes:
    """The payload of a complete chunked body; ValueError when it is cut short."""
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        if end + 2 + size > len(data):
            raise ValueError("chunked answer cut short")
        pos = end + 2 + size + 2
