"""Runtime shared by the mine and evaluate stages: one LLMClient (hosts, model gate), one
AdaptivePool and one Outage (the stage-wide pause), plus requests with retries and the
schema-checked call with one repair. Both APIs (Ollama, OpenAI-compatible) go through the
same requests, retries, pause and pool.

The context a window must fit in: the smallest over the hosts of what each says
(Ollama: num_ctx, capped at the model's trained context; llama.cpp: its slots' context;
vLLM: max_model_len), `mine.num_ctx` where a server does not say. Learned once, with the
pool's size, when the first video is mined.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psutil
import structlog
from pydantic import BaseModel, ValidationError

from ytpiped import logs, metrics
from ytpiped.clock import Clock
from ytpiped.config import MineConfig
from ytpiped.mining.llm import (
    KIND_DISCONNECTED,
    KIND_MODEL_MISSING,
    KIND_SERVER_ERROR,
    KIND_UNAUTHORIZED,
    KIND_UNAVAILABLE,
    OVERLOAD_KINDS,
    LLMClient,
    LLMError,
    Reply,
)
from ytpiped.mining.llm_kinds import KIND_CUT, KIND_INVALID
from ytpiped.mining.outage import SERVER_KINDS, Outage, server_name
from ytpiped.mining.pool import AdaptivePool, formula_workers, initial_workers
from ytpiped.mining.prompts import repair_messages
from ytpiped.mining.schema import Clamp, json_schema, parse_reply, validation_message
from ytpiped.retry import doubling_s

M = TypeVar("M", bound=BaseModel)
#: server problems that another try a few seconds later will not fix: pause at once
NOT_RETRIED = frozenset({KIND_UNAVAILABLE, KIND_MODEL_MISSING, KIND_UNAUTHORIZED})
#: server failures that can also be one prompt's doing (it crashes the runner, it is cut
#: off by a proxy): when other requests were answered meanwhile, the request is to blame.
#: Not 503s or timeouts: those come with load, never with one prompt.
MAYBE_OWN = frozenset({KIND_SERVER_ERROR, KIND_DISCONNECTED})


class LLMPaused(LLMError):
    """Not sent: the stage-wide pause runs (the server failed other requests)."""


@dataclass(frozen=True)
class Tokens:
    """Tokens the servers counted for some requests (0 where a server did not say)."""

    prompt: int = 0
    completion: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.prompt + other.prompt, self.completion + other.completion)

    @classmethod
    def of(cls, reply: Reply) -> Tokens:
        return cls(reply.prompt_tokens or 0, reply.eval_tokens or 0)

    @classmethod
    def load(cls, data: Any) -> Tokens:
        """From stored JSON ({"prompt": …, "completion": …}); zeros for anything else."""
        if not isinstance(data, dict):
            return cls()
        return cls(int(data.get("prompt") or 0), int(data.get("completion") or 0))

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def dump(self) -> dict[str, int]:
        return {"prompt": self.prompt, "completion": self.completion}


@dataclass(frozen=True)
class Structured(Generic[M]):
    value: M | None
    raw: str
    error: str | None
    repaired: bool
    host: str
    tokens: Tokens = field(default_factory=Tokens)
    kind: str | None = None  # why value is None: KIND_INVALID or KIND_CUT
    clamped: int = 0  # numbers clamped into the schema's range


class Runtime:
    def __init__(self, llm: LLMClient, pool: AdaptivePool, cfg: MineConfig,
                 clock: Clock) -> None:
        self.llm, self.pool, self.cfg, self.clock = llm, pool, cfg, clock
        self.sized = cfg.workers is not None
        self.probed = False  # the servers told their context (and the pool was sized)
        self.context = cfg.num_ctx  # tokens a request (prompt + answer) may have
        self.outage = Outage(cfg.unavailable_backoff_s, cfg.max_unavailable_backoff_s,
                             server_name(llm.apis()))
        self.answered = 0  # requests answered so far
        self.closed = False

    @classmethod
    def from_config(cls, cfg: MineConfig, clock: Clock) -> Runtime:
        llm = LLMClient(cfg.llm_hosts(), clock, num_ctx=cfg.num_ctx, keep_alive=cfg.keep_alive,
                        timeout_s=cfg.request_timeout_s, max_tokens=cfg.answer_tokens,
                        api=cfg.api, model=cfg.model, switch_after_s=cfg.model_switch_s)
        fixed = cfg.workers is not None
        start = cfg.workers if cfg.workers is not None else len(llm.hosts)
        pool = AdaptivePool(start, max(start, cfg.max_workers), clock, adaptive=not fixed)
        return cls(llm, pool, cfg, clock)

    async def ensure_sized(self, log: Any = None) -> None:
        """Ask the servers, once, what context they give a request, and (workers = "auto")
        size the pool from the machine and what they serve at once."""
        if self.probed:
            return
        infos = await self.llm.server_info(self.cfg.model)
        if not infos:
            return  # nobody answered: keep the cautious start, try again next video
        self.probed = True
        self.context = server_context(infos, self.cfg.num_ctx)
        if self.context != self.cfg.num_ctx:
            (log or structlog.get_logger()).info("mine_context", tokens=self.context,
                                                 num_ctx=self.cfg.num_ctx)
        if self.sized:
            return
        ram = psutil.virtual_memory().total
        formula = formula_workers(ram, os.cpu_count() or 1, self.cfg.model_ram_gb,
                                  self.cfg.reserved_ram_gb, self.cfg.max_workers)
        start, upper = initial_workers(formula, infos, len(self.llm.hosts),
                                       self.cfg.max_workers)
        self.pool.set_limits(start, upper)
        self.sized = True
        (log or structlog.get_logger()).info("mine_pool_sized", workers=start, upper=upper,
                                             formula=formula, servers=len(infos))

    async def request(self, model: str, messages: Sequence[Mapping[str, str]],
                      schema: Mapping[str, Any], *, pooled: bool = True) -> Reply:
        """One request. A 503, timeout, disconnect or server error is tried again up to
        window_attempts times with doubling pauses; after that (at once for an unreachable
        server or a missing model, or when the server failed the first request after a
        pause) the stage-wide pause starts or grows and the error is raised. While a pause
        runs nothing is sent (LLMPaused). The request's own problems (a prompt longer than
        the context, another 4xx) are raised at once; a 5xx or disconnect on every try while
        the server answered other requests is raised as the request's own (`own`)."""
        attempts = self.cfg.window_attempts
        answered = self.answered
        for attempt in range(attempts):
            t0 = self.clock.monotonic()
            try:
                if pooled:
                    async with self.pool.slot():
                        self._check_paused()
                        reply = await self.llm.chat_json(model, messages, schema)
                    self.pool.record(reply.latency_s)
                else:
                    self._check_paused()
                    reply = await self.llm.chat_json(model, messages, schema)
            except LLMPaused:
                raise
            except LLMError as exc:
                if pooled and exc.kind in OVERLOAD_KINDS:
                    self.pool.record(self.clock.monotonic() - t0, overload=True)
                if exc.kind not in SERVER_KINDS:
                    raise
                if exc.kind in NOT_RETRIED or self.outage.level > 0 or attempt == attempts - 1:
                    if (exc.kind in MAYBE_OWN and self.outage.level == 0
                            and self.answered > answered):
                        raise LLMError(f"{exc} (on each of {attempts} tries, while the server "
                                       "answered other requests)", kind=exc.kind,
                                       host=exc.host, own=True) from exc
                    self._trip(exc)
                    raise
                await self.clock.sleep(doubling_s(attempt, self.cfg.retry_base_s, 60.0))
            else:
                self._answered()
                return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_paused(self) -> None:
        out = self.outage
        if out.active(self.clock.now()):
            raise LLMPaused(out.error, kind=out.kind or KIND_UNAVAILABLE)

    def _trip(self, exc: LLMError) -> None:
        t = self.outage.trip(exc.kind, str(exc), self.clock.now())
        if t is not None:  # once per change of state, not per failed request
            logs.get("ytpiped.mining").warning(
                "llm_paused" if t.level == 1 else "llm_pause_extended", kind=t.kind,
                level=t.level, wait_s=t.wait_s, until=t.until, error=str(exc))

    def _answered(self) -> None:
        self.answered += 1
        out_s = self.outage.recover(self.clock.now())
        if out_s is not None:
            logs.get("ytpiped.mining").info("llm_resumed", out_s=round(out_s, 1))

    async def structured(self, model: str, messages: Sequence[Mapping[str, str]],
                         schema_model: type[M], *, pooled: bool = True) -> Structured[M]:
        """Ask with `format=` the model's schema; on invalid JSON or schema ask once more,
        showing the reply and the error (a reply cut at the token cap is not shown: the
        model is asked for a shorter one); after that give up and hand back the raw reply
        with the kind of failure (KIND_CUT when the last reply was cut, else KIND_INVALID).
        Numbers outside the schema's range are clamped, logged and counted."""
        schema = json_schema(schema_model)
        reply = await self.request(model, messages, schema, pooled=pooled)
        tokens = Tokens.of(reply)
        clamps: list[Clamp] = []
        try:
            value = parse_reply(schema_model, reply.content, clamps)
        except (json.JSONDecodeError, ValidationError) as exc:
            error = self._why(reply, exc)
        else:
            self._clamped(schema_model, clamps)
            return Structured(value, reply.content, None, False, reply.host, tokens,
                              clamped=len(clamps))
        fix = repair_messages(messages, None if reply.truncated else reply.content, error)
        again = await self.request(model, fix, schema, pooled=pooled)
        tokens += Tokens.of(again)
        clamps = []
        try:
            value = parse_reply(schema_model, again.content, clamps)
        except (json.JSONDecodeError, ValidationError) as exc:
            return Structured(None, again.content, self._why(again, exc), True, again.host,
                              tokens, KIND_CUT if again.truncated else KIND_INVALID)
        self._clamped(schema_model, clamps)
        return Structured(value, again.content, None, True, again.host, tokens,
                          clamped=len(clamps))

    def _why(self, reply: Reply, exc: json.JSONDecodeError | ValidationError) -> str:
        if reply.truncated:
            return (f"the reply was cut off at {self.cfg.answer_tokens} tokens, "
                    "mine.answer_tokens, before its JSON ended: answer again, much shorter "
                    "(short texts, fewer items)")
        return validation_message(exc)

    @staticmethod
    def _clamped(schema_model: type[BaseModel], clamps: Sequence[Clamp]) -> None:
        if not clamps:
            return
        fields: dict[str, int] = {}
        for c in clamps:
            fields[c.field] = fields.get(c.field, 0) + 1
        for name, count in fields.items():
            metrics.llm_clamped(name, count)
        logs.get("ytpiped.mining").info(
            "llm_values_clamped", schema=schema_model.__name__, fields=fields,
            examples=[f"{c.field} {c.value:g} -> {c.clamped:g}" for c in clamps[:3]])

    def room(self, fixed_tokens: int) -> int:
        """Transcript tokens a request can carry beside `fixed_tokens` of prompt (both as
        ytpiped.mining.windows.approx_tokens counts them) and the answer."""
        return prompt_room(self.context, self.cfg.answer_tokens, fixed_tokens)

    async def close(self) -> None:
        """Close the LLM client (mine and evaluate share the runtime: once is enough)."""
        if not self.closed:
            self.closed = True
            await self.llm.close()


#: approx_tokens is a guess (four characters a token); a real tokenizer may count this
#: much more on unusual text (numbers, names, other languages)
TOKEN_MARGIN = 0.25
#: tokens a chat template adds around each message
TEMPLATE_TOKENS = 32


def prompt_room(context: int, answer_tokens: int, fixed_tokens: int) -> int:
    """Transcript tokens that fit in `context` beside the fixed part of the prompt and two
    answers (a repair request carries the rejected answer too), with room for the estimate
    being short (pure)."""
    usable = (context - 2 * answer_tokens) / (1 + TOKEN_MARGIN)
    return max(0, int(usable) - fixed_tokens - TEMPLATE_TOKENS)


def server_context(infos: Sequence[Mapping[str, Any]], num_ctx: int) -> int:
    """The context every host can give one request (see module doc)."""
    sizes = []
    for info in infos:
        if info.get("api") == "openai":
            sizes.append(int(info.get("context_length") or num_ctx))
        else:  # Ollama gets num_ctx with every request, up to what the model was trained for
            trained = info.get("model_context")
            sizes.append(min(num_ctx, int(trained)) if trained else num_ctx)
    return min(sizes) if sizes else num_ctx
