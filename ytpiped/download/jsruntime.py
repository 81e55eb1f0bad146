"""Which JavaScript runtime yt-dlp uses for YouTube's challenges, found once, by path.

Since 2025.11 yt-dlp needs an external runtime (Deno, Node, Bun or QuickJS) to run the
challenge-solver scripts of `yt-dlp-ejs`; without one, YouTube serves few or no formats.
ytpiped depends on the `deno` package, which installs the Deno binary into the
environment's `bin/`. yt-dlp looks there and on PATH, but under systemd neither may be
what it expects, so ytpiped resolves the runtime itself and hands yt-dlp its path
(`js_runtimes = {"deno": {"path": ...}}`).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ytpiped.download.options import JS_RUNTIMES

#: runtime name -> its executable's usual names
EXECUTABLES: dict[str, tuple[str, ...]] = {
    "deno": ("deno",), "node": ("node", "nodejs"), "bun": ("bun",), "quickjs": ("qjs",),
}


@dataclass(frozen=True)
class JsRuntime:
    name: str  # deno | node | bun | quickjs (yt-dlp's key)
    path: str

    def ytdlp_param(self) -> dict[str, dict[str, str]]:
        """yt-dlp's `js_runtimes` parameter enabling exactly this runtime."""
        return {self.name: {"path": self.path}}


@dataclass(frozen=True)
class Found:
    runtime: JsRuntime | None
    problem: str | None = None  # why none was found (names the key and a fix)


KEY = "download.js_runtime"
_FIND_LOCK = threading.Lock()


def packaged_deno() -> str | None:
    """The Deno binary the `deno` package installed, if any."""
    try:
        from deno import find_deno_bin
    except ImportError:
        return None
    try:
        with _FIND_LOCK:  # find_deno_bin reads sysconfig, which two threads at once can break
            path = os.fsdecode(find_deno_bin())
    except (FileNotFoundError, OSError):
        return None
    return path if _executable(path) else None


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _on_path(name: str) -> str | None:
    for exe in EXECUTABLES[name]:
        found = shutil.which(exe)
        if found:
            return found
    return None


def _named(name: str) -> str | None:
    if name == "deno":
        return packaged_deno() or _on_path("deno")
    return _on_path(name)


def name_of(path: str) -> str | None:
    """The runtime an executable is, from its file name (deno, node, nodejs, bun, qjs)."""
    base = Path(path).name.lower().removesuffix(".exe")
    for name, exes in EXECUTABLES.items():
        if base in exes or base == name:
            return name
    return None


def resolve(setting: str) -> Found:
    """The runtime `download.js_runtime` names: "auto" (the packaged deno, else the first
    of deno, node, bun, quickjs on PATH), a runtime's name, or the path of its executable."""
    if setting == "auto":
        for name in JS_RUNTIMES:
            path = _named(name)
            if path:
                return Found(JsRuntime(name, path))
        return Found(None, f"key '{KEY}' = \"auto\": no JavaScript runtime found (neither the "
                           "deno package nor deno, node, bun or qjs on PATH); reinstall "
                           "ytpiped (`pip install .` brings deno) or set the key to the path "
                           "of a runtime")
    if setting in JS_RUNTIMES:
        named = _named(setting)
        if named:
            return Found(JsRuntime(setting, named))
        exes = " or ".join(EXECUTABLES[setting])
        return Found(None, f"key '{KEY}' = \"{setting}\": {exes} is not installed or not on "
                           f"PATH (PATH={os.environ.get('PATH', '')}); install it, set the "
                           "key to its path, or use \"auto\" for the deno installed with "
                           "ytpiped")
    path = str(Path(setting).expanduser())
    runtime = name_of(path)
    if runtime is None:
        return Found(None, f"key '{KEY}' = {setting!r}: cannot tell which runtime this is "
                           "from its name; the executable must be called deno, node, "
                           "nodejs, bun or qjs")
    if not _executable(path):
        why = "does not exist" if not os.path.exists(path) else "is not an executable file"
        return Found(None, f"key '{KEY}': {path} {why}; point it at the runtime's "
                           "executable or use \"auto\"")
    return Found(JsRuntime(runtime, path))
