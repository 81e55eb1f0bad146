"""The two client APIs an LLM host may speak, behind one small interface.

`OllamaBackend`: the official `ollama.AsyncClient` (/api/chat with `format=` the JSON
schema, `num_ctx`, `num_predict`, `keep_alive`). `OpenAIBackend`: the official `openai`
AsyncOpenAI client (/v1/chat/completions with `response_format` carrying the same schema,
`max_tokens`) for vLLM, SGLang, llama.cpp's server, LM Studio and Ollama's own /v1.

Both map their client's exceptions onto the same error kinds (ytpiped.mining.llm), so the
runtime's retries, the stage-wide pause and the attempts a video spends do not depend on
the API. Both report the tokens the server counted and whether the answer was cut at
`max_tokens`. `info` tells what a server says about its capacity and context, for sizing
the pool and the windows; anything it cannot tell is None.

Structured outputs on OpenAI-compatible servers: the standard form is
`{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`; llama-cpp-python's
server only knows `{"type": "json_object", "schema": …}` and answers the standard form with
HTTP 422. A host that refuses the standard form that way is asked in the other form from
then on (once per host, no attempt spent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import ollama
import openai

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
)

API_OLLAMA = "ollama"
API_OPENAI = "openai"
INFO_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Answer:
    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    truncated: bool  # stopped at max_tokens: the JSON is cut off
    model: str  # the name the server answered under


class Backend(Protocol):
    api: str
    url: str

    async def chat(self, model: str, messages: Sequence[Mapping[str, str]],
                   schema: Mapping[str, Any], *, num_ctx: int, max_tokens: int) -> Answer: ...

    def error_kind(self, exc: BaseException) -> str | None: ...

    async def info(self, model: str) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


def _status_kind(code: int, message: str) -> str:
    """Kind of an HTTP error answer, the same for both APIs."""
    if any(w in message.lower() for w in CONTEXT_WORDS):
        return KIND_CONTEXT
    if code in (503, 429):
        return KIND_BUSY  # queue full, model loading, a rate limit in front of the server
    if code == 404:
        return KIND_MODEL_MISSING
    if code in (401, 403):
        return KIND_UNAUTHORIZED
    return KIND_BAD_REQUEST if 400 <= code < 500 else KIND_SERVER_ERROR


def _transport_kind(exc: BaseException) -> str | None:
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


def ollama_error_kind(exc: BaseException) -> str | None:
    """The error kind of an exception the ollama client raised (None: not ours)."""
    if isinstance(exc, ollama.ResponseError):
        return _status_kind(exc.status_code, str(exc.error))
    return _transport_kind(exc)


class BadAnswer(Exception):
    """The server answered, but not as its API promises (no choices, not JSON)."""


def _connection_kind(cause: BaseException | None) -> str:
    """What broke under an APIConnectionError. Told by the transport error's class names:
    the openai client is built on httpx (1.x) or its fork httpx2 (3.x), whose errors are
    alike but not the same classes."""
    names = {c.__name__ for c in type(cause).__mro__} if cause is not None else set()
    if names & {"ConnectError", "ConnectTimeout", "ConnectionRefusedError"}:
        return KIND_UNAVAILABLE
    if "TimeoutException" in names or "TimeoutError" in names:
        return KIND_TIMEOUT
    return KIND_DISCONNECTED


def openai_error_kind(exc: BaseException) -> str | None:
    """The error kind of an exception the openai client raised (None: not ours). The
    client wraps transport errors in APIConnectionError (the transport's error as
    __cause__)."""
    if isinstance(exc, openai.APITimeoutError):
        return KIND_TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return _connection_kind(exc.__cause__)
    if isinstance(exc, openai.APIStatusError):
        return _status_kind(exc.status_code, f"{exc.message} {exc.body!r}")
    if isinstance(exc, openai.APIResponseValidationError | BadAnswer):
        return KIND_BAD_RESPONSE
    return _transport_kind(exc)


def context_length(model_info: Mapping[str, Any]) -> int | None:
    """The context the model was trained for, from Ollama's /api/show model_info."""
    arch = model_info.get("general.architecture")
    value = model_info.get(f"{arch}.context_length")
    return int(value) if isinstance(value, int | float) and value > 0 else None


class OllamaBackend:
    api = API_OLLAMA

    def __init__(self, url: str, timeout_s: float, keep_alive: str) -> None:
        self.url = url
        self.keep_alive = keep_alive
        self.client = ollama.AsyncClient(host=url, timeout=timeout_s)

    def error_kind(self, exc: BaseException) -> str | None:
        return ollama_error_kind(exc)

    async def chat(self, model: str, messages: Sequence[Mapping[str, str]],
                   schema: Mapping[str, Any], *, num_ctx: int, max_tokens: int) -> Answer:
        resp = await self.client.chat(
            model=model, messages=list(messages), format=dict(schema), stream=False,
            options={"num_ctx": num_ctx, "temperature": 0.0, "num_predict": max_tokens},
            keep_alive=self.keep_alive)
        return Answer(resp.message.content or "", resp.prompt_eval_count, resp.eval_count,
                      resp.done_reason == "length", resp.model or model)

    async def info(self, model: str) -> dict[str, Any] | None:
        """/api/ps entry of `model` (if loaded), /api/show model_info and the weights size
        from /api/tags; None when the server does not answer."""
        try:
            ps, show, tags = await asyncio.gather(self.client.ps(), self.client.show(model),
                                                  self.client.list())
        except Exception as exc:
            if self.error_kind(exc) is None:
                raise
            return None
        loaded = [m for m in ps.models if model in (m.model, m.name)]
        weights = [m.size for m in tags.models if m.model == model and m.size]
        model_info = dict(show.modelinfo or {})
        return {"host": self.url, "api": self.api,
                "size": int(loaded[0].size or 0) if loaded else None,
                "context_length": loaded[0].context_length if loaded else None,
                "model_context": context_length(model_info),
                "weights": int(weights[0]) if weights else None,
                "model_info": model_info, "slots": None}

    async def close(self) -> None:
        await self.client.close()  # type: ignore[no-untyped-call]


def openai_base(url: str) -> str:
    """The client's base URL: the host's URL as given when it has a path (".../v1"),
    else with /v1 added (http://127.0.0.1:8000 -> http://127.0.0.1:8000/v1)."""
    parts = urlsplit(url.rstrip("/"))
    if parts.path in ("", "/"):
        parts = parts._replace(path="/v1")
    return urlunsplit(parts)


def server_root(url: str) -> str:
    """The server's root (for llama.cpp's /props): the base without a trailing /v1."""
    base = openai_base(url)
    return base[:-3] if base.endswith("/v1") else base


def response_format(style: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    if style == "json_object":
        return {"type": "json_object", "schema": dict(schema)}
    return {"type": "json_schema",
            "json_schema": {"name": str(schema.get("title") or "answer"),
                            "schema": dict(schema), "strict": True}}


def _refuses_json_schema(exc: BaseException) -> bool:
    """The server does not know `{"type": "json_schema"}`: 400/422, or (llama-cpp-python's
    server, whose request validation escapes as an internal error) a 500 naming it."""
    return (isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 422, 500)
            and "response_format" in f"{exc.message} {exc.body!r}")


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and value > 0 else None


class OpenAIBackend:
    api = API_OPENAI

    def __init__(self, url: str, timeout_s: float, api_key: str = "ytpiped") -> None:
        self.url = url
        self.base = openai_base(url)
        self.timeout_s = timeout_s
        # no retries inside the client: ytpiped's runtime retries and pauses
        self.client = openai.AsyncOpenAI(base_url=self.base, api_key=api_key,
                                         timeout=timeout_s, max_retries=0)
        self.style = "json_schema"  # "json_object" once the server refused the standard form

    def error_kind(self, exc: BaseException) -> str | None:
        return openai_error_kind(exc)

    async def chat(self, model: str, messages: Sequence[Mapping[str, str]],
                   schema: Mapping[str, Any], *, num_ctx: int, max_tokens: int) -> Answer:
        try:
            resp = await self._create(model, messages, schema, max_tokens)
        except openai.APIStatusError as exc:
            if self.style != "json_schema" or not _refuses_json_schema(exc):
                raise
            self.style = "json_object"
            resp = await self._create(model, messages, schema, max_tokens)
        if not getattr(resp, "choices", None):
            raise BadAnswer(f"the answer has no choices: {str(resp)[:200]}")
        choice = resp.choices[0]
        usage = resp.usage
        return Answer(choice.message.content or "",
                      usage.prompt_tokens if usage is not None else None,
                      usage.completion_tokens if usage is not None else None,
                      choice.finish_reason == "length", resp.model or model)

    async def _create(self, model: str, messages: Sequence[Mapping[str, str]],
                      schema: Mapping[str, Any], max_tokens: int) -> Any:
        create: Any = self.client.chat.completions.create  # messages/format typed loosely
        return await create(model=model, messages=list(messages), temperature=0.0,
                            max_tokens=max_tokens, stream=False,
                            response_format=response_format(self.style, schema))

    async def info(self, model: str) -> dict[str, Any] | None:
        """/v1/models (is the model served; its context where the server says: vLLM's
        max_model_len, llama.cpp's meta.n_ctx_train) and llama.cpp's /props (slots and the
        context each slot has). None when the server does not answer."""
        try:
            listing = await self.client.models.list()
        except Exception as exc:
            if self.error_kind(exc) is None:
                raise
            return None
        entries = [m.model_dump() for m in listing.data]
        entry = next((e for e in entries if e.get("id") == model), None)
        ctx = None
        if entry is not None:
            meta = entry.get("meta") or {}
            ctx = _int(entry.get("max_model_len")) or _int(entry.get("context_length")) or \
                _int(meta.get("n_ctx_train") if isinstance(meta, dict) else None)
        slots, slot_ctx = await self._props()
        return {"host": self.url, "api": self.api, "models": [e.get("id") for e in entries],
                "served": entry is not None, "context_length": slot_ctx or ctx,
                "model_context": ctx, "slots": slots, "size": None, "weights": None,
                "model_info": {}}

    async def _props(self) -> tuple[int | None, int | None]:
        """llama.cpp server's /props: (total_slots, n_ctx per slot); (None, None) elsewhere."""
        try:
            async with httpx.AsyncClient(timeout=INFO_TIMEOUT_S) as http:
                r = await http.get(server_root(self.url) + "/props")
                doc = r.json() if r.status_code == 200 else {}
        except (httpx.HTTPError, json.JSONDecodeError, ValueError):
            return None, None
        if not isinstance(doc, dict):
            return None, None
        gen = doc.get("default_generation_settings") or {}
        return _int(doc.get("total_slots")), _int(gen.get("n_ctx") if isinstance(gen, dict)
                                                   else None)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()


BackendFactory = Callable[[str, str, float, str], Backend]


def make_backend(api: str, url: str, timeout_s: float, keep_alive: str) -> Backend:
    if api == API_OPENAI:
        return OpenAIBackend(url, timeout_s)
    return OllamaBackend(url, timeout_s, keep_alive)
