"""FakeOllama: an aiohttp app speaking the Ollama HTTP API, for tests, benchmarks and the demo.

Endpoints as the real server: POST /api/chat and /api/generate (streaming NDJSON unless
`"stream": false`), GET /api/tags, /api/ps, /api/version, POST /api/show, and Ollama's
OpenAI-compatible POST /v1/chat/completions (non-streaming; `response_format` of type
"json_schema", or "json_object" with a "schema" as llama-cpp-python takes it; errors as
{"error": {"message", "type"}}) and GET /v1/models. Behaviour:

- `parallel` requests are served at once (a semaphore); more wait in a queue of at most
  `max_queue`, beyond which requests get HTTP 503 as Ollama answers past OLLAMA_MAX_QUEUE.
- service time = `latency_s` + `per_token_s` x prompt tokens (+ `load_s` when the model or
  num_ctx changes, counted in `swaps`), times 1 + `overload_penalty` x queued/parallel (a
  server past its capacity gets slower, as memory-starved hosts do).
- `inject(mode, times=, match=, path=)` queues faults: "malformed" (content not JSON),
  "schema" (JSON of the wrong shape), "500", "503", "429", "401", "404", "context" (HTTP
  400: the prompt does not fit the context), "garbage" (HTTP 200 whose body is not JSON, as
  a proxy's error page), "drop" (connection closed without an answer), "stall" (no
  answer until the client gives up or the server stops), and two answers a small model
  gives under a grammar: "out_of_range" (every importance 0, every confidence 5: the
  grammar leaves number bounds out) and "ramble" (its first text runs on and on, so the
  answer is cut at the cap); and "overlong" (every list three items past its maxItems, as
  from a server that does not enforce the schema).
- `ctx_limit`: a request whose prompt tokens (len/4) plus its answer cap (num_predict /
  max_tokens) exceed it is refused as too long for the context (HTTP 400), as real servers
  do; /api/show then reports it as the model's context length. An answer longer than the
  cap is cut there (done_reason / finish_reason "length").
- `v1_formats`: the `response_format` types /v1 accepts; others get HTTP 422 naming
  response_format (llama-cpp-python's server knows only "json_object").
- `ctx_limit` is reported in /v1/models too (as vLLM's `max_model_len`) when
  `v1_reports_context` is set; by default /v1/models says nothing of the context, as
  Ollama's /v1 does.
- `hold()` keeps requests that get a slot there until `release()`: a test lines up what
  arrives meanwhile without counting on a latency being long enough.
- With no `match`, a fault with a large `times` is a server that is busy, failing or
  hanging for a long stretch.
- answers are built from the request (ytpiped.testing.fake_answers), so tests can check
  what went where; every request is kept in `requests`.

`async with FakeOllama(parallel=2) as fake: AsyncClient(host=fake.url)` runs it on
127.0.0.1 on a free port; `python -m ytpiped.testing.fake_ollama --port N` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from ytpiped.testing import fake_answers

FAULT_MODES = ("malformed", "schema", "500", "503", "429", "401", "404", "context", "garbage",
               "drop", "stall", "out_of_range", "ramble", "overlong")
CHAT_PATHS = ("/api/chat", "/api/generate", "/v1/chat/completions")
WEIGHTS_BYTES = 4_683_087_332
# qwen2-7B-like geometry: what /api/show reports, and what /api/ps sizes are derived from
MODEL_INFO: dict[str, Any] = {
    "general.architecture": "qwen2", "general.parameter_count": 7_615_616_512,
    "qwen2.block_count": 28, "qwen2.context_length": 32768, "qwen2.embedding_length": 3584,
    "qwen2.attention.head_count": 28, "qwen2.attention.head_count_kv": 4,
}
DETAILS = {"parent_model": "", "format": "gguf", "family": "qwen2", "families": ["qwen2"],
           "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}


def kv_bytes_per_slot(model_info: dict[str, Any], num_ctx: int) -> int:
    """f16 K and V caches of one parallel slot of `num_ctx` tokens."""
    arch = model_info.get("general.architecture", "")
    layers = int(model_info[f"{arch}.block_count"])
    heads = int(model_info[f"{arch}.attention.head_count"])
    kv_heads = int(model_info.get(f"{arch}.attention.head_count_kv", heads))
    head_dim = int(model_info[f"{arch}.embedding_length"]) // heads
    return 2 * layers * num_ctx * kv_heads * head_dim * 2


@dataclass
class Fault:
    mode: str
    times: int = 1
    match: str | None = None
    path: str | None = None
    title: str | None = None


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    at: float
    status: int = 200
    prompt_tokens: int = 0  # what the answer reported (0: not answered)
    completion_tokens: int = 0


@dataclass
class Stats:
    served: int = 0
    rejected_503: int = 0
    faults: int = 0
    swaps: int = 0
    active: int = 0
    pending: int = 0
    max_active: int = 0
    max_pending: int = 0
    models_seen: list[str] = field(default_factory=list)


class FakeOllama:
    def __init__(self, *, latency_s: float = 0.0, per_token_s: float = 0.0, parallel: int = 1,
                 max_queue: int = 512, overload_penalty: float = 0.0, load_s: float = 0.0,
                 models: Sequence[str] = ("qwen2.5:7b-instruct",), any_model: bool = True,
                 preload: bool = True, num_ctx: int = 4096, stall_s: float = 3600.0,
                 stream_chunk: int = 24, ctx_limit: int | None = None,
                 v1_formats: Sequence[str] = ("json_schema", "json_object"),
                 v1_reports_context: bool = False) -> None:
        self.ctx_limit = ctx_limit
        self.v1_reports_context = v1_reports_context
        self.v1_formats = tuple(v1_formats)
        self.latency_s, self.per_token_s, self.load_s = latency_s, per_token_s, load_s
        self.parallel, self.max_queue, self.overload_penalty = parallel, max_queue, overload_penalty
        self.models, self.any_model = list(models), any_model
        self.stall_s, self.stream_chunk = stall_s, stream_chunk
        self.loaded: tuple[str, int] | None = (self.models[0], num_ctx) if preload else None
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.stats = Stats()
        self.port = 0
        self._slots = asyncio.Semaphore(parallel)
        self._stopping = asyncio.Event()
        self._open = asyncio.Event()  # cleared by hold(): served requests wait
        self._open.set()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, mode: str, *, times: int = 1, match: str | None = None,
               path: str | None = None, title: str | None = None) -> None:
        """Answer the next `times` requests that contain `match`, go to `path` and ask
        for the schema titled `title` (None: any) with fault `mode`."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r} (one of {', '.join(FAULT_MODES)})")
        self.faults.append(Fault(mode, times, match, path, title))

    def hold(self) -> None:
        """Requests that get a slot wait there (holding it) until `release()`, so a test
        can line up what arrives meanwhile, however slow the machine."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/generate", self._generate)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_post("/api/show", self._show)
        app.router.add_get("/api/version", self._version)
        app.router.add_post("/v1/chat/completions", self._v1_chat)
        app.router.add_get("/v1/models", self._v1_models)
        app.router.add_get("/", self._root)
        return app

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1:`port` (0: a free one; the same port again after stop())."""
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port or 0,
                           reuse_address=True)
        await site.start()
        server = site._server  # the bound socket tells the port chosen by the OS
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self.url

    async def stop(self) -> None:
        """Stop listening; requests in flight (stalls included) end at once."""
        self._stopping.set()
        self._open.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOllama:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def chat_bodies(self) -> list[dict[str, Any]]:
        """Bodies of the generation requests; /v1 ones with the schema under `format` (as
        Ollama turns `response_format` into it), so tests read both APIs alike."""
        return [r.body if r.path != "/v1/chat/completions" else
                {**r.body, "format": _v1_schema(r.body.get("response_format"))}
                for r in self.requests if r.path in CHAT_PATHS]

    # ------------------------------------------------------------------ helpers

    def _take_fault(self, path: str, prompt: str, fmt: Any) -> str | None:
        title = fmt.get("title") if isinstance(fmt, dict) else None
        for f in self.faults:
            if ((f.path is None or f.path == path) and (f.match is None or f.match in prompt)
                    and (f.title is None or f.title == title)):
                f.times -= 1
                if f.times <= 0:
                    self.faults.remove(f)
                self.stats.faults += 1
                return f.mode
        return None

    def model_info(self) -> dict[str, Any]:
        """/api/show model_info: qwen2-7B geometry, the context as `ctx_limit` says."""
        if self.ctx_limit is None:
            return dict(MODEL_INFO)
        return {**MODEL_INFO, "qwen2.context_length": self.ctx_limit}

    def _known(self, model: str) -> bool:
        return self.any_model or model in self.models

    @staticmethod
    def _error(status: int, message: str, api: str = "ollama") -> web.Response:
        if api == "openai":
            kind = "invalid_request_error" if status < 500 else "server_error"
            return web.json_response({"error": {"message": message, "type": kind,
                                                "code": status}}, status=status)
        return web.json_response({"error": message}, status=status)

    def _service_s(self, prompt_tokens: int, model: str, num_ctx: int) -> float:
        s = self.latency_s + self.per_token_s * prompt_tokens
        queued = max(0, self.stats.pending - self.parallel)
        s *= 1.0 + self.overload_penalty * queued / self.parallel
        if self.loaded != (model, num_ctx):
            self.stats.swaps += self.loaded is not None
            self.loaded = (model, num_ctx)
            s += self.load_s
        return s

    async def _stall(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.stall_s)

    # ------------------------------------------------------------------ generation

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/api/chat")

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/api/generate")

    async def _v1_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/v1/chat/completions")

    async def _complete(self, request: web.Request, path: str) -> web.StreamResponse:
        api = "openai" if path.startswith("/v1/") else "ollama"
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self._error(400, "invalid JSON body", api)
        rec = Recorded(path, body, time.monotonic())
        self.requests.append(rec)
        model = str(body.get("model") or "")
        options = body.get("options") or {}
        if path == "/api/generate":
            prompt = f"{body.get('system') or ''}\n{body.get('prompt') or ''}"
        else:
            prompt = fake_answers.conversation_text(body.get("messages") or [])
        if api == "openai":
            fmt = _v1_schema(body.get("response_format"))
            cap = body.get("max_tokens") or body.get("max_completion_tokens")
        else:
            fmt, cap = body.get("format"), options.get("num_predict")
        cap = int(cap) if isinstance(cap, int) and cap > 0 else None
        fault = self._take_fault(path, prompt, fmt)
        prompt_tokens = max(1, len(prompt) // 4)

        def refuse(status: int, message: str) -> web.Response:
            rec.status = status
            return self._error(status, message, api)

        if not model:
            return refuse(400, "model is required")
        if fault == "404" or not self._known(model):
            return refuse(404, f'model "{model}" not found, try pulling it first')
        if fault == "401":
            return refuse(401, "unauthorized: a valid API key is required")
        if api == "openai" and body.get("response_format") is not None:
            kind = (body.get("response_format") or {}).get("type")
            if kind not in self.v1_formats:
                # as llama-cpp-python 0.3's server answers it: its request validation
                # escapes as an internal error
                return refuse(500, f"1 validation error: ('body', 'response_format', 'type'): "
                                   f"Input should be {' or '.join(map(repr, self.v1_formats))} "
                                   f"(got {kind!r})")
        if fault == "context" or (self.ctx_limit is not None
                                  and prompt_tokens + (cap or 0) > self.ctx_limit):
            return refuse(400, "the input length exceeds the context length")
        if fault == "500":
            return refuse(500, "llama runner process has terminated: exit status 2")
        if fault == "drop":
            rec.status = 0
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        if fault == "garbage":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>",
                                content_type="application/json")
        if fault == "429":
            return refuse(429, "too many requests")
        if fault == "503" or self.stats.pending >= self.parallel + self.max_queue:
            self.stats.rejected_503 += 1
            return refuse(503, "server busy, please try again.  maximum pending requests "
                               "exceeded")
        if fault == "stall":
            rec.status = 0
            await self._stall()
            return web.Response(status=503)
        num_ctx = int(options.get("num_ctx") or 4096)
        self.stats.pending += 1
        self.stats.max_pending = max(self.stats.max_pending, self.stats.pending)
        try:
            async with self._slots:
                self.stats.active += 1
                self.stats.max_active = max(self.stats.max_active, self.stats.active)
                self.stats.models_seen.append(model)
                t0 = time.monotonic()
                try:
                    await self._open.wait()  # held (hold()) until release()
                    service = self._service_s(prompt_tokens, model, num_ctx)
                    if service > 0:
                        await asyncio.sleep(service)
                finally:
                    self.stats.active -= 1
        finally:
            self.stats.pending -= 1
        if fault == "malformed":
            content = fake_answers.MALFORMED
        elif fault == "schema":
            content = fake_answers.WRONG_SCHEMA
        else:
            content = fake_answers.answer(fmt, prompt)
            if fault == "out_of_range":
                content = fake_answers.out_of_range(content)
            elif fault == "ramble":
                content = fake_answers.ramble(content)
            elif fault == "overlong":
                content = fake_answers.overlong(content)
        completion_tokens = max(1, len(content) // 4)
        cut = cap is not None and completion_tokens > cap
        if cut:
            assert cap is not None
            content, completion_tokens = content[:cap * 4], cap
        self.stats.served += 1
        rec.prompt_tokens, rec.completion_tokens = prompt_tokens, completion_tokens
        if api == "openai":
            return web.json_response({
                "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": int(time.time()), "model": model, "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "length" if cut else "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}})
        took_ns = int((time.monotonic() - t0) * 1e9)
        final = {"model": model, "created_at": _now(), "done": True,
                 "done_reason": "length" if cut else "stop",
                 "total_duration": took_ns, "load_duration": 0,
                 "prompt_eval_count": prompt_tokens, "prompt_eval_duration": took_ns // 2,
                 "eval_count": completion_tokens, "eval_duration": took_ns // 2}
        key = "message" if path == "/api/chat" else "response"

        def piece(text: str) -> Any:
            return {"role": "assistant", "content": text} if key == "message" else text

        if body.get("stream", True) is False:
            return web.json_response({**final, key: piece(content)})
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i in range(0, len(content), self.stream_chunk):
            chunk = {"model": model, "created_at": _now(), key: piece(
                content[i:i + self.stream_chunk]), "done": False}
            await resp.write(json.dumps(chunk).encode() + b"\n")
        await resp.write(json.dumps({**final, key: piece("")}).encode() + b"\n")
        await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ metadata

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {"name": name, "model": name, "modified_at": _now(), "size": WEIGHTS_BYTES,
                "digest": "sha256:" + "0" * 64, "details": DETAILS}

    async def _tags(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded("/api/tags", {}, time.monotonic()))
        return web.json_response({"models": [self._model_entry(m) for m in self.models]})

    async def _ps(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded("/api/ps", {}, time.monotonic()))
        if self.loaded is None:
            return web.json_response({"models": []})
        model, num_ctx = self.loaded
        size = WEIGHTS_BYTES + self.parallel * kv_bytes_per_slot(MODEL_INFO, num_ctx)
        until = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
        return web.json_response({"models": [{**self._model_entry(model), "size": size,
                                              "size_vram": size, "expires_at": until,
                                              "context_length": num_ctx}]})

    async def _show(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(Recorded("/api/show", body, time.monotonic()))
        model = str(body.get("model") or body.get("name") or "")
        if not self._known(model):
            return self._error(404, f"model '{model}' not found")
        return web.json_response({
            "modelfile": f"FROM {model}\n", "parameters": "stop \"<|im_end|>\"",
            "template": "{{ .Prompt }}", "details": DETAILS, "model_info": self.model_info(),
            "capabilities": ["completion", "tools"], "modified_at": _now()})

    async def _v1_models(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded("/v1/models", {}, time.monotonic()))
        extra = {"max_model_len": self.ctx_limit} \
            if self.v1_reports_context and self.ctx_limit else {}
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": int(time.time()), "owned_by": "library",
             **extra} for m in self.models]})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.6"})

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")


def _v1_schema(response_format: Any) -> Any:
    """The JSON schema an OpenAI `response_format` carries (None: free text)."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_object":
        return response_format.get("schema") or "json"
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ytpiped.testing.fake_ollama",
                                description="Run FakeOllama on 127.0.0.1 (for the demo).")
    p.add_argument("--port", type=int, default=11434, help="port (default 11434)")
    p.add_argument("--latency", type=float, default=0.5, help="seconds per request (0.5)")
    p.add_argument("--per-token", type=float, default=0.0, help="seconds per prompt token (0)")
    p.add_argument("--parallel", type=int, default=1, help="requests served at once (1)")
    p.add_argument("--max-queue", type=int, default=512, help="queued requests before 503 (512)")
    args = p.parse_args(argv)
    fake = FakeOllama(latency_s=args.latency, per_token_s=args.per_token,
                      parallel=args.parallel, max_queue=args.max_queue)
    print(f"FakeOllama listening on http://127.0.0.1:{args.port}", flush=True)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
