"""The LLM seam: one or more hosts, each speaking Ollama's API or the OpenAI-compatible
chat-completions API (ytpiped.mining.backends).

Every request is a non-streaming chat with an explicit timeout, temperature 0, a cap on the
answer's tokens and the JSON schema the answer must match (Ollama `format=`, OpenAI
`response_format`); Ollama requests also carry `num_ctx` and `keep_alive`. Failures become
`LLMError` with a kind (ytpiped.mining.llm_kinds), the same for both APIs: the server's
state (unreachable, disconnected, busy, timeout, model missing, unauthorized, bad response,
5xx) pauses all LLM work (ytpiped.mining.outage); a prompt longer than the context or another
4xx belongs to the request.

Requests go to the host with the fewest outstanding requests among those not marked down;
a host that refused a connection is skipped for `down_s`. `ModelGate` groups requests by
model so a server is not made to swap models back and forth (mining vs evaluation). The
client counts the tokens the servers report and the time at least one request was in
flight, for tokens/s in status and metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ytpiped import metrics
from ytpiped.clock import Clock
from ytpiped.config import LLMHost
from ytpiped.mining.backends import (
    API_OLLAMA,
    Backend,
    BackendFactory,
    make_backend,
    ollama_error_kind,
)
from ytpiped.mining.llm_kinds import (
    CONTEXT_WORDS,
    KIND_BAD_REQUEST,
    KIND_BAD_RESPONSE,
    KIND_BUSY,
    KIND_CONTEXT,
    KIND_DISCONNECTED,
    KIND_MODEL_MISSING,
    KIND_SERVER_ERROR,
    KIND_TIMEOUT,
    KIND_UNAUTHORIZED,
    KIND_UNAVAILABLE,
    OVERLOAD_KINDS,
    LLMError,
)

__all__ = ["CONTEXT_WORDS", "KIND_BAD_REQUEST", "KIND_BAD_RESPONSE", "KIND_BUSY", "KIND_CONTEXT",
           "KIND_DISCONNECTED", "KIND_MODEL_MISSING", "KIND_SERVER_ERROR", "KIND_TIMEOUT",
           "KIND_UNAUTHORIZED", "KIND_UNAVAILABLE", "OVERLOAD_KINDS", "LLMClient", "LLMError",
           "ModelGate", "Reply", "error_kind_of", "pick_host"]


def error_kind_of(exc: BaseException) -> str | None:
    """The LLMError kind of an exception the ollama client raised (None: not ours)."""
    return ollama_error_kind(exc)


def pick_host(hosts: Sequence[str], outstanding: Mapping[str, int],
              down_until: Mapping[str, float], now: float) -> str:
    """Least outstanding requests among hosts that are up (ties: list order); if every
    host is down, the one that comes back first."""
    up = [h for h in hosts if down_until.get(h, 0.0) <= now]
    if not up:
        return min(hosts, key=lambda h: down_until.get(h, 0.0))
    return min(up, key=lambda h: outstanding.get(h, 0))


@dataclass(frozen=True)
class Reply:
    content: str
    host: str
    model: str  # as asked (mine.model / eval_model); the host may call it otherwise
    latency_s: float
    prompt_tokens: int | None
    eval_tokens: int | None  # completion tokens
    truncated: bool = False  # cut at max_tokens (mine.answer_tokens)


class ModelGate:
    """Requests for the running model go ahead; a request for another model waits until
    the running one drains, and once it has waited `switch_after_s` no new requests for
    the running model start. So evaluations gather and run together between mining runs."""

    def __init__(self, clock: Clock, switch_after_s: float) -> None:
        self.clock = clock
        self.switch_after_s = switch_after_s
        self.current: str | None = None
        self.active = 0
        self.switches = 0
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._since: dict[str, float] = {}

    def waiting(self, model: str) -> int:
        """How many requests for `model` wait for the gate."""
        return len(self._waiting.get(model, ()))

    def _overdue(self, model: str) -> bool:
        now = self.clock.monotonic()
        return any(m != model and now - t >= self.switch_after_s for m, t in self._since.items())

    async def acquire(self, model: str) -> None:
        if (self.active == 0 and not self._waiting) or (
                model == self.current and not self._overdue(model)):
            self._grant(model)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(model, []).append(fut)
        self._since.setdefault(model, self.clock.monotonic())
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled
            else:
                self._forget(model, fut)
            raise

    def _grant(self, model: str) -> None:
        if self.current is not None and model != self.current:
            self.switches += 1
        self.current = model
        self.active += 1

    def _forget(self, model: str, fut: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(model, [])
        if fut in waiters:
            waiters.remove(fut)
        if not waiters:
            self._waiting.pop(model, None)
            self._since.pop(model, None)

    def release(self) -> None:
        self.active -= 1
        if self.active > 0 or not self._waiting:
            return
        # drained: the model waiting longest goes next, all its waiters together
        model = min(self._waiting, key=lambda m: self._since[m])
        waiters = self._waiting.pop(model)
        self._since.pop(model, None)
        for fut in waiters:
            if not fut.done():
                self._grant(model)
                fut.set_result(None)
        if self.active == 0 and self._waiting:
            self.active += 1
            self.release()

    @asynccontextmanager
    async def use(self, model: str) -> AsyncIterator[None]:
        await self.acquire(model)
        try:
            yield
        finally:
            self.release()


class LLMClient:
    def __init__(self, hosts: Sequence[str | LLMHost], clock: Clock, *, num_ctx: int,
                 keep_alive: str, timeout_s: float, max_tokens: int = 1024,
                 api: str = API_OLLAMA, model: str = "", down_s: float = 5.0,
                 switch_after_s: float = 120.0,
                 backend_factory: BackendFactory = make_backend) -> None:
        """`hosts`: URLs (speaking `api`) or LLMHost entries; a host whose entry names
        another model is sent that name where `model` is asked for."""
        specs = [h if isinstance(h, LLMHost) else LLMHost(h, api, model) for h in hosts]
        if not specs:
            raise ValueError("at least one LLM host is needed")
        self.specs = {s.url: s for s in specs}
        self.hosts = list(self.specs)
        self.clock = clock
        self.num_ctx, self.keep_alive, self.timeout_s = num_ctx, keep_alive, timeout_s
        self.max_tokens = max_tokens
        self.model = model
        self.down_s = down_s
        self.gate = ModelGate(clock, switch_after_s)
        self.outstanding: dict[str, int] = dict.fromkeys(self.hosts, 0)
        self.served: dict[str, int] = dict.fromkeys(self.hosts, 0)
        self.prompt_tokens = 0  # as the servers counted them
        self.tokens_out = 0  # generated (completion) tokens
        self.started = clock.monotonic()
        self.busy_s = 0.0  # time with at least one request in flight
        self._busy_since: float | None = None
        self.down_until: dict[str, float] = {}
        self.backends: dict[str, Backend] = {
            h: backend_factory(s.api, h, timeout_s, keep_alive) for h, s in self.specs.items()}

    @property
    def options(self) -> dict[str, Any]:
        """What every request sends (recorded as provenance)."""
        return {"num_ctx": self.num_ctx, "temperature": 0.0, "max_tokens": self.max_tokens}

    def apis(self) -> list[str]:
        return sorted({s.api for s in self.specs.values()})

    def name_on(self, host: str, model: str) -> str:
        """What `host` calls `model` (its table's `model` replaces mine.model there)."""
        spec = self.specs[host]
        return spec.model if model == self.model and spec.model else model

    async def chat_json(self, model: str, messages: Sequence[Mapping[str, str]],
                        schema: Mapping[str, Any]) -> Reply:
        """One structured chat; tries each host once while they refuse connections."""
        async with self.gate.use(model):
            last: LLMError | None = None
            for _ in self.hosts:
                host = pick_host(self.hosts, self.outstanding, self.down_until,
                                 self.clock.monotonic())
                try:
                    return await self._chat_on(host, model, messages, schema)
                except LLMError as exc:
                    if exc.kind != KIND_UNAVAILABLE:
                        raise
                    last = exc
            assert last is not None
            raise last

    def _start(self, host: str) -> None:
        if not any(self.outstanding.values()):
            self._busy_since = self.clock.monotonic()
        self.outstanding[host] += 1

    def _end(self, host: str) -> None:
        self.outstanding[host] -= 1
        if not any(self.outstanding.values()) and self._busy_since is not None:
            self.busy_s += self.clock.monotonic() - self._busy_since
            self._busy_since = None

    async def _chat_on(self, host: str, model: str, messages: Sequence[Mapping[str, str]],
                       schema: Mapping[str, Any]) -> Reply:
        backend = self.backends[host]
        self._start(host)
        t0 = self.clock.monotonic()
        try:
            ans = await backend.chat(self.name_on(host, model), messages, schema,
                                     num_ctx=self.num_ctx, max_tokens=self.max_tokens)
        except Exception as exc:
            kind = backend.error_kind(exc)
            if kind is None:
                raise
            if kind == KIND_UNAVAILABLE:
                self.down_until[host] = self.clock.monotonic() + self.down_s
            metrics.llm_request(model, kind)
            detail = str(exc).strip() or type(exc).__name__
            raise LLMError(f"{host}: {detail}", kind=kind, host=host) from exc
        finally:
            self._end(host)
        self.down_until.pop(host, None)
        self.served[host] += 1
        self.prompt_tokens += ans.prompt_tokens or 0
        self.tokens_out += ans.completion_tokens or 0
        latency = self.clock.monotonic() - t0
        metrics.llm_request(model, "ok", latency, ans.prompt_tokens, ans.completion_tokens)
        return Reply(content=ans.content, host=host, model=model, latency_s=latency,
                     prompt_tokens=ans.prompt_tokens, eval_tokens=ans.completion_tokens,
                     truncated=ans.truncated)

    def busy_seconds(self) -> float:
        now = self.clock.monotonic()
        return self.busy_s + (now - self._busy_since if self._busy_since is not None else 0.0)

    def tokens_per_s(self) -> float:
        """Prompt + completion tokens per second of time with a request in flight: the
        servers' throughput, which the mining ETA divides the backlog's tokens by."""
        busy = self.busy_seconds()
        return (self.prompt_tokens + self.tokens_out) / busy if busy > 0 else 0.0

    def completion_tokens_per_s(self) -> float:
        """Generated tokens per second of time with a request in flight."""
        busy = self.busy_seconds()
        return self.tokens_out / busy if busy > 0 else 0.0

    async def server_info(self, model: str) -> list[dict[str, Any]]:
        """Per reachable host, what it says about its capacity and context (backends'
        `info`), for sizing the pool and the windows. Unreachable hosts are left out."""
        infos = await asyncio.gather(*(b.info(self.name_on(h, model))
                                       for h, b in self.backends.items()))
        return [i for i in infos if i is not None]

    async def close(self) -> None:
        for backend in self.backends.values():
            await backend.close()
