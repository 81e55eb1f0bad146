"""systemd notification protocol (sd_notify) in a few lines: no extra dependency."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends READY=1 / STATUS= / WATCHDOG=1 / STOPPING=1 when NOTIFY_SOCKET is set."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        addr = environ.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if addr:
            self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s: float | None = int(usec) / 1e6 if usec.isdigit() and mine else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        if self.address is None:
            return False
        msg = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(self.address)
                sock.sendall(msg)
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send(ready="1", **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(status=text)

    def watchdog(self) -> bool:
        return self.send(watchdog="1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before start-up (or stop) counts as timed out."""
        return self.send(extend_timeout_usec=str(int(seconds * 1e6)))

    def stopping(self) -> bool:
        return self.send(stopping="1")
