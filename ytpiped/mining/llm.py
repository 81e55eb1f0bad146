"""The LLM seam: the official `ollama.AsyncClient` on one or more hosts.

Every request is a non-streaming chat with an explicit timeout, `num_ctx`, `keep_alive`,
temperature 0 and `format=` a JSON schema. Failures become `LLMError` with a kind:

  llm_unavailable   the server cannot be reached (connection refused, DNS, host down)
  llm_disconnected  the connection broke before an answer came
  llm_busy          HTTP 503: the server's queue is full (OLLAMA_MAX_QUEUE) or it is loading
  llm_timeout       no answer within request_timeout_s (a stalled or overloaded server)
  llm_model_missing HTTP 404: the model is not pulled
  llm_bad_response  the server's HTTP answer was not JSON
  llm_error         any other server error (HTTP 5xx: the runner crashed, is restarting ...)
  llm_context_too_long  the prompt does not fit num_ctx (the request's own problem)
  llm_bad_request   any other HTTP 4xx (the request's own problem)

The first six are the server's state and pause all LLM work (ytpiped.mining.outage); the
last two belong to the request.

Requests go to the host with the fewest outstanding requests among those not marked down;
a host that refused a connection is skipped for `down_s`. `ModelGate` groups requests by
model so a server is not made to swap models back and forth (mining vs evaluation).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import ollama

from ytpiped import metrics
from ytpiped.clock import Clock

KIND_UNAVAILABLE = "llm_unavailable"
KIND_BUSY = "llm_busy"
KIND_TIMEOUT = "llm_timeout"
KIND_DISCONNECTED = "llm_disconnected"
KIND_MODEL_MISSING = "llm_model_missing"
KIND_BAD_RESPONSE = "llm_bad_response"
KIND_SERVER_ERROR = "llm_error"
KIND_CONTEXT = "llm_context_too_long"
KIND_BAD_REQUEST = "llm_bad_request"
OVERLOAD_KINDS = frozenset({KIND_BUSY, KIND_TIMEOUT})
#: how servers word "the prompt is longer than the context" (Ollama, llama.cpp, OpenAI-alikes)
CONTEXT_WORDS = ("context length", "context size", "context window", "maximum context")


class LLMError(Exception):
    """`own`: the server failed this request while it answered others, so the request
    (its prompt) is the problem, whatever the kind says."""

    def __init__(self, message: str, *, kind: str, host: str | None = None,
                 own: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.host = host
        self.own = own


def error_kind_of(exc: BaseException) -> str | None:
    """The LLMError kind of an exception the ollama client raised (None: not ours)."""
    if isinstance(exc, ollama.ResponseError):
        code = exc.status_code
        if any(w in str(exc.error).lower() for w in CONTEXT_WORDS):
            return KIND_CONTEXT
        if code in (503, 404):
            return KIND_BUSY if code == 503 else KIND_MODEL_MISSING
        return KIND_BAD_REQUEST if 400 <= code < 500 else KIND_SERVER_ERROR
    if isinstance(exc, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
        return KIND_UNAVAILABLE
    if isinstance(exc, httpx.TimeoutException):
        return KIND_TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return KIND_DISCONNECTED
    if isinstance(exc, json.JSONDecodeError):
        return KIND_BAD_RESPONSE
    if isinstance(exc, httpx.HTTPError):
        return KIND_SERVER_ERROR
    return None


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
    model: str
    latency_s: float
    prompt_tokens: int | None
    eval_tokens: int | None


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


ClientFactory = Callable[[str, float], Any]


def _default_client(host: str, timeout_s: float) -> Any:
    return ollama.AsyncClient(host=host, timeout=timeout_s)


class LLMClient:
    def __init__(self, hosts: Sequence[str], clock: Clock, *, num_ctx: int, keep_alive: str,
                 timeout_s: float, down_s: float = 5.0, switch_after_s: float = 120.0,
                 client_factory: ClientFactory = _default_client) -> None:
        if not hosts:
            raise ValueError("at least one Ollama host is needed")
        self.hosts = list(dict.fromkeys(hosts))
        self.clock = clock
        self.num_ctx, self.keep_alive, self.timeout_s = num_ctx, keep_alive, timeout_s
        self.down_s = down_s
        self.gate = ModelGate(clock, switch_after_s)
        self.outstanding: dict[str, int] = dict.fromkeys(self.hosts, 0)
        self.served: dict[str, int] = dict.fromkeys(self.hosts, 0)
        self.tokens_out = 0  # generated tokens, for tokens/s in status and metrics
        self.started = clock.monotonic()
        self.down_until: dict[str, float] = {}
        self._clients = {h: client_factory(h, timeout_s) for h in self.hosts}

    @property
    def options(self) -> dict[str, Any]:
        """What every request sends (recorded as provenance)."""
        return {"num_ctx": self.num_ctx, "temperature": 0.0}

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

    async def _chat_on(self, host: str, model: str, messages: Sequence[Mapping[str, str]],
                       schema: Mapping[str, Any]) -> Reply:
        self.outstanding[host] += 1
        t0 = self.clock.monotonic()
        try:
            resp = await self._clients[host].chat(
                model=model, messages=list(messages), format=dict(schema), stream=False,
                options=self.options, keep_alive=self.keep_alive)
        except Exception as exc:
            kind = error_kind_of(exc)
            if kind is None:
                raise
            if kind == KIND_UNAVAILABLE:
                self.down_until[host] = self.clock.monotonic() + self.down_s
            metrics.llm_request(model, kind)
            detail = str(exc).strip() or type(exc).__name__
            raise LLMError(f"{host}: {detail}", kind=kind, host=host) from exc
        finally:
            self.outstanding[host] -= 1
        self.down_until.pop(host, None)
        self.served[host] += 1
        self.tokens_out += resp.eval_count or 0
        latency = self.clock.monotonic() - t0
        metrics.llm_request(model, "ok", latency, resp.prompt_eval_count, resp.eval_count)
        return Reply(content=resp.message.content or "", host=host, model=model,
                     latency_s=latency, prompt_tokens=resp.prompt_eval_count,
                     eval_tokens=resp.eval_count)

    def tokens_per_s(self) -> float:
        elapsed = self.clock.monotonic() - self.started
        return self.tokens_out / elapsed if elapsed > 0 else 0.0

    async def server_info(self, model: str) -> list[dict[str, Any]]:
        """Per reachable host: /api/ps entry of `model` (if loaded), /api/show model_info and
        the weights size from /api/tags, for sizing the worker pool. Unreachable hosts are
        left out."""
        out: list[dict[str, Any]] = []
        for host, client in self._clients.items():
            try:
                ps, show, tags = await asyncio.gather(client.ps(), client.show(model),
                                                      client.list())
            except Exception as exc:
                if error_kind_of(exc) is None:
                    raise
                continue
            loaded = [m for m in ps.models if model in (m.model, m.name)]
            weights = [m.size for m in tags.models if m.model == model and m.size]
            out.append({"host": host,
                        "size": int(loaded[0].size or 0) if loaded else None,
                        "context_length": loaded[0].context_length if loaded else None,
                        "weights": int(weights[0]) if weights else None,
                        "model_info": dict(show.modelinfo or {})})
        return out

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
