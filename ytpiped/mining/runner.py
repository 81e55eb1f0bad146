"""Runtime shared by the mine and evaluate stages: one LLMClient (hosts, model gate) and
one AdaptivePool, plus requests with retries and the schema-checked call with one repair.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psutil
import structlog
from pydantic import BaseModel, ValidationError

from ytpiped.clock import Clock
from ytpiped.config import MineConfig, Settings
from ytpiped.mining.llm import KIND_UNAVAILABLE, OVERLOAD_KINDS, LLMClient, LLMError, Reply
from ytpiped.mining.pool import AdaptivePool, formula_workers, initial_workers
from ytpiped.mining.prompts import repair_messages
from ytpiped.mining.schema import json_schema, parse_reply, validation_message

M = TypeVar("M", bound=BaseModel)
NOT_RETRIED = frozenset({KIND_UNAVAILABLE, "llm_model_missing"})


@dataclass(frozen=True)
class Structured(Generic[M]):
    value: M | None
    raw: str
    error: str | None
    repaired: bool
    host: str


class Runtime:
    def __init__(self, llm: LLMClient, pool: AdaptivePool, cfg: MineConfig,
                 clock: Clock) -> None:
        self.llm, self.pool, self.cfg, self.clock = llm, pool, cfg, clock
        self.sized = cfg.workers is not None

    @classmethod
    def from_config(cls, cfg: MineConfig, clock: Clock) -> Runtime:
        llm = LLMClient(cfg.hosts, clock, num_ctx=cfg.num_ctx, keep_alive=cfg.keep_alive,
                        timeout_s=cfg.request_timeout_s, switch_after_s=cfg.model_switch_s)
        fixed = cfg.workers is not None
        start = cfg.workers if cfg.workers is not None else len(llm.hosts)
        pool = AdaptivePool(start, max(start, cfg.max_workers), clock, adaptive=not fixed)
        return cls(llm, pool, cfg, clock)

    async def ensure_sized(self, log: Any = None) -> None:
        """workers = "auto": size the pool from the machine and the servers, once."""
        if self.sized:
            return
        infos = await self.llm.server_info(self.cfg.model)
        if not infos:
            return  # nobody answered: keep the cautious start, try again next video
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
        """One request; 503, timeouts, disconnects and server errors are retried up to
        window_attempts times with doubling pauses; 'unavailable' is raised at once."""
        attempts = self.cfg.window_attempts
        for attempt in range(attempts):
            t0 = self.clock.monotonic()
            try:
                if pooled:
                    async with self.pool.slot():
                        reply = await self.llm.chat_json(model, messages, schema)
                    self.pool.record(reply.latency_s)
                else:
                    reply = await self.llm.chat_json(model, messages, schema)
                return reply
            except LLMError as exc:
                if pooled and exc.kind in OVERLOAD_KINDS:
                    self.pool.record(self.clock.monotonic() - t0, overload=True)
                if exc.kind in NOT_RETRIED or attempt == attempts - 1:
                    raise
                await self.clock.sleep(min(60.0, self.cfg.retry_base_s * 2 ** attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def structured(self, model: str, messages: Sequence[Mapping[str, str]],
                         schema_model: type[M], *, pooled: bool = True) -> Structured[M]:
        """Ask with `format=` the model's schema; on invalid JSON or schema ask once more,
        showing the error; after that give up and hand back the raw reply."""
        schema = json_schema(schema_model)
        reply = await self.request(model, messages, schema, pooled=pooled)
        try:
            return Structured(parse_reply(schema_model, reply.content), reply.content, None,
                              False, reply.host)
        except (json.JSONDecodeError, ValidationError) as exc:
            error = validation_message(exc)
        fix = repair_messages(messages, reply.content, error)
        again = await self.request(model, fix, schema, pooled=pooled)
        try:
            return Structured(parse_reply(schema_model, again.content), again.content, None,
                              True, again.host)
        except (json.JSONDecodeError, ValidationError) as exc:
            return Structured(None, again.content, validation_message(exc), True, again.host)

    async def close(self) -> None:
        await self.llm.close()


_SHARED: dict[tuple[Any, ...], Runtime] = {}


def shared_runtime(settings: Settings, clock: Clock) -> Runtime:
    """The one Runtime of this event loop and mine config (mine and evaluate share it, so
    the model gate sees both and the pool counts every request)."""
    cfg = settings.mine
    key = (id(asyncio.get_running_loop()), json.dumps(cfg.__dict__, sort_keys=True,
                                                       default=str))
    rt = _SHARED.get(key)
    if rt is None:
        rt = _SHARED[key] = Runtime.from_config(cfg, clock)
    return rt


async def close_shared(rt: Runtime) -> None:
    for key, value in list(_SHARED.items()):
        if value is rt:
            del _SHARED[key]
            await rt.close()
