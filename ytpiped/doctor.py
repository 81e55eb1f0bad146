"""`ytpiped doctor`: check what a real run depends on, one line each with ok/warn/fail
and the fix.

yt-dlp (version and age), yt-dlp-ejs, the JavaScript runtime (found and run through
yt-dlp itself), the PO-token plugin, the cookie file, the data dir, the database, every
configured Whisper model (offline), NVML and, on a GPU machine, whether ctranslate2 can
load the cuBLAS/cuDNN libraries of the version it was built for, and every `mine.hosts`
entry (reachable, model pulled or served, how many requests it serves at once; for an
OpenAI-compatible server also the context it reports). Nothing here
changes anything; the checks that use the network only talk to the configured hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import os
import shutil
import stat
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import structlog

from ytpiped import config as cfg
from ytpiped.config import Settings
from ytpiped.download import jsruntime, ytdlp

OK, WARN, FAIL = "ok", "warn", "fail"
YTDLP_MAX_AGE_DAYS = 60
PIP = f"{sys.executable} -m pip install -U"
HOST_TIMEOUT_S = 5.0
POT_DIST = "bgutil-ytdlp-pot-provider"
POT_DEFAULT_URL = "http://127.0.0.1:4416"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


def failed(checks: Sequence[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def to_json(checks: Sequence[Check]) -> dict[str, Any]:
    return {"ok": not failed(checks), "checks": [asdict(c) for c in checks]}


def format_checks(checks: Sequence[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(f"{c.status.upper() if c.status != OK else 'ok':<5} {c.name:<{width}}  "
                     f"{c.detail}")
        if c.fix:
            lines.append(f"{'':<5} {'':<{width}}  fix: {c.fix}")
    n_fail = sum(c.status == FAIL for c in checks)
    n_warn = sum(c.status == WARN for c in checks)
    lines.append(f"\n{len(checks)} checks: {n_fail} failed, {n_warn} warnings"
                 + ("" if n_fail else " (nothing stops a run)"))
    return "\n".join(lines)


def run(settings: Settings, *, now: float | None = None, nvml: Any = None,
        load_library: Callable[[str], object] | None = None) -> list[Check]:
    """Every check, in order. `nvml` and `load_library` replace pynvml and ctypes.CDLL
    (tests)."""
    now = time.time() if now is None else now
    checks = [ytdlp_version(now), ejs(), js_runtime(settings), pot_plugin(settings),
              cookies(settings, now), data_dir(settings), database(settings)]
    gpus, gpu_check = gpu(nvml)
    checks += whisper_models(settings, bool(gpus))
    checks.append(gpu_check)
    if gpus:
        checks.append(cuda_libraries(load_library or ctypes.CDLL))
    checks += asyncio.run(llm_hosts(settings))
    return checks


# --------------------------------------------------------------------------- yt-dlp


def ytdlp_version(now: float) -> Check:
    try:
        version = ytdlp.ytdlp_version()
    except Exception as exc:
        return Check("yt-dlp", FAIL, f"cannot be imported: {exc}", f"{PIP} 'yt-dlp[default]'")
    try:
        y, m, d = (int(x) for x in version.split(".")[:3])
        age = (dt.date.fromtimestamp(now) - dt.date(y, m, d)).days
    except ValueError:
        return Check("yt-dlp", WARN, f"version {version}: cannot tell its age",
                     f"{PIP} 'yt-dlp[default]'")
    detail = f"{version} ({age} days old)"
    if age > YTDLP_MAX_AGE_DAYS:
        return Check("yt-dlp", WARN, f"{detail}: YouTube changes every few weeks and old "
                     f"versions stop working", f"{PIP} 'yt-dlp[default]'")
    return Check("yt-dlp", OK, detail)


def ejs() -> Check:
    try:
        version = metadata.version("yt-dlp-ejs")
    except metadata.PackageNotFoundError:
        return Check("yt-dlp-ejs", FAIL, "not installed: YouTube's JavaScript challenges "
                     "cannot be solved", f"{PIP} 'yt-dlp[default]'")
    try:
        from yt_dlp.extractor.youtube.jsc._builtin.vendor import VERSION as wanted
    except Exception:  # a yt-dlp without EJS support
        return Check("yt-dlp-ejs", WARN, f"{version}, but this yt-dlp does not use it",
                     f"{PIP} 'yt-dlp[default]'")
    if version.split(".")[:2] != str(wanted).split(".")[:2]:
        return Check("yt-dlp-ejs", FAIL, f"{version}, but yt-dlp expects {wanted}",
                     f"{PIP} 'yt-dlp[default]'")
    return Check("yt-dlp-ejs", OK, f"{version} (the challenge-solver scripts)")


def js_runtime(settings: Settings) -> Check:
    found = jsruntime.resolve(settings.download.js_runtime)
    if found.runtime is None:
        return Check("JavaScript runtime", FAIL, found.problem or "not found",
                     "reinstall ytpiped (it depends on the deno package) or set "
                     "download.js_runtime to the path of deno, node, bun or qjs")
    log = structlog.get_logger("ytpiped.doctor")
    got = ytdlp.check_js_runtime(ytdlp.Options.of(settings.download,
                                                  js_runtime=found.runtime), log)
    if got.problem is not None or not got.ran:
        return Check("JavaScript runtime", FAIL, f"{found.runtime.name} at "
                     f"{found.runtime.path}: {got.problem or 'did not run the solver'}",
                     "reinstall ytpiped, or point download.js_runtime at a working runtime "
                     "(deno >= 2.3, node >= 22, bun >= 1.2.11)")
    return Check("JavaScript runtime", OK, f"{got.name} {got.version} at {got.path}: yt-dlp "
                 f"found it and it ran the solver scripts ({got.solver})")


def pot_plugin(settings: Settings) -> Check:
    try:
        version = metadata.version(POT_DIST)
    except metadata.PackageNotFoundError:
        return Check("PO-token plugin", OK, "not installed (optional: needed when YouTube "
                     "answers 403 to media or asks for PO tokens; pip install 'ytpiped[pot]', "
                     "see the README)")
    loaded = _pot_providers()
    if not any("bgutil" in name.lower() for name in loaded):
        return Check("PO-token plugin", FAIL, f"{POT_DIST} {version} is installed, but yt-dlp "
                     f"did not load it (PO-token providers: {', '.join(loaded) or 'none'})",
                     f"{PIP} '{POT_DIST}' 'yt-dlp[default]' (matching versions)")
    args = settings.download.extractor_args.get("youtubepot-bgutilhttp", {})
    url = (args.get("base_url") or [POT_DEFAULT_URL])[0].rstrip("/")
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=HOST_TIMEOUT_S) as resp:
            resp.read(4096)
    except Exception as exc:
        return Check("PO-token plugin", WARN, f"{POT_DIST} {version} is installed, but its "
                     f"provider server does not answer at {url}/ping ({exc})",
                     "start the provider (see the README: PO tokens) or set download."
                     "extractor_args.\"youtubepot-bgutilhttp\".base_url")
    return Check("PO-token plugin", OK, f"{POT_DIST} {version}, loaded by yt-dlp "
                 f"({', '.join(loaded)}); its provider answers at {url}")


def _pot_providers() -> list[str]:
    """The PO-token providers yt-dlp loaded (plugins load when a YoutubeDL is built)."""
    import yt_dlp

    try:
        from yt_dlp.extractor.youtube.pot._registry import _pot_providers as registry
    except ImportError:
        return []
    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}):
        return [str(getattr(p, "PROVIDER_NAME", k)) for k, p in registry.value.items()]


# --------------------------------------------------------------------------- files


def cookies(settings: Settings, now: float) -> Check:
    value = settings.download.cookies_file
    fix = ("export cookies.txt (Netscape format) from a browser logged in to YouTube to "
           "download.cookies_file, or set it to \"\"")
    if not value:
        return Check("cookies", OK, "none configured: a guest session (about 300 videos an "
                     "hour before YouTube asks to sign in)")
    path = Path(value).expanduser()
    problem = cfg.cookies_file_problem(value)
    if problem is not None:
        return Check("cookies", FAIL, f"{path} {problem}", fix)
    mode = stat.S_IMODE(path.stat().st_mode)
    youtube = live = 0
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in path.read_text(errors="replace").splitlines():
            fields = line.removeprefix("#HttpOnly_").split("\t")
            if (line.startswith("#") and not line.startswith("#HttpOnly_")) or len(fields) < 7:
                continue
            if fields[0].lstrip(".").endswith("youtube.com"):
                youtube += 1
                expires = int(fields[4]) if fields[4].isdigit() else 0
                live += expires == 0 or expires > now
    if not youtube:
        return Check("cookies", FAIL, f"{path} holds no youtube.com cookies", fix)
    if not live:
        return Check("cookies", FAIL, f"{path}: all {youtube} youtube.com cookies have expired",
                     fix)
    if mode & 0o077:
        return Check("cookies", WARN, f"{path}: {live} live youtube.com cookies, but the file is "
                     f"readable by others (mode {mode:04o})", f"chmod 600 {path}")
    return Check("cookies", OK, f"{path}: {live} live youtube.com cookies, owner-only")


def data_dir(settings: Settings) -> Check:
    path = settings.data_path
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if path.exists():
            with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
                pass
        elif not os.access(probe, os.W_OK):
            raise PermissionError(f"{probe} is not writable")
    except OSError as exc:
        return Check("data dir", FAIL, f"{path} is not writable ({exc})",
                     f"make it writable for {os.environ.get('USER', 'this user')} or set "
                     "data_dir")
    free = shutil.disk_usage(probe).free
    need = settings.download.min_free_disk_bytes
    shown = f"{path}{'' if path.exists() else ' (created at the first run)'}: " \
            f"{cfg.format_size(free)} free"
    if free < need:
        return Check("data dir", FAIL, f"{shown}, below download.min_free_disk_bytes "
                     f"({cfg.format_size(need)}): downloads will not start", "free space")
    buffer = settings.download.max_buffer_bytes
    if free < need + buffer:
        return Check("data dir", WARN, f"{shown}: less than the audio buffer may take "
                     f"(download.max_buffer_bytes {cfg.format_size(buffer)})",
                     "free space or lower download.max_buffer_bytes")
    return Check("data dir", OK, shown)


def database(settings: Settings) -> Check:
    from ytpiped.store import SqliteDB, db_path, is_postgres

    if is_postgres(settings.store.url):
        return postgres_database(settings.store.url)
    path = db_path(settings.data_path)
    if not path.exists():
        return Check("database", OK, f"{path}: not created yet")
    try:
        store = SqliteDB(path, readonly=True)
    except Exception as exc:  # StoreNotReady, a file that is not a database, …
        return Check("database", FAIL, f"{path} cannot be opened ({exc})",
                     "restore it from a backup, or move it away to start afresh")
    try:
        result = store.check()
    finally:
        store.close()
    if result != "ok":
        return Check("database", FAIL, f"{path}: quick_check found: {result}",
                     f"stop the daemon and run: sqlite3 {path} '.recover' | sqlite3 "
                     f"{path}.recovered; or restore a backup")
    return Check("database", OK, f"{path}: quick_check ok")


def postgres_database(url: str) -> Check:
    """store.url names PostgreSQL: the server answers and the schema is this version's."""
    from ytpiped.store import StoreNotReady, StoreUnavailable
    from ytpiped.store.blocking import BlockingStore
    from ytpiped.store.postgres import PostgresStore, redact

    shown = redact(url)
    try:
        store = BlockingStore.opened(PostgresStore(url, readonly=True, pool_size=1,
                                                   connect_timeout_s=10))
    except StoreNotReady:
        return Check("database", OK, f"{shown}: no schema yet (`ytpiped db migrate` or the "
                     "first `ytpiped run` creates it)")
    except StoreUnavailable as exc:
        return Check("database", FAIL, str(exc), "start the server, or fix store.url (host, "
                     "port, database; the password in PGPASSWORD or ~/.pgpass)")
    try:
        result = store.check()
    finally:
        store.close()
    if result != "ok":
        return Check("database", FAIL, f"{shown}: {result}", "run `ytpiped db migrate`")
    return Check("database", OK, f"{shown}: reachable, schema up to date")


# --------------------------------------------------------------------------- transcription


def whisper_models(settings: Settings, has_gpu: bool) -> list[Check]:
    t = settings.transcribe
    out = [_model("transcribe.model_cpu", t.model_cpu, t.allow_download)]
    if has_gpu:
        out.append(_model("transcribe.model_gpu", t.model_gpu, t.allow_download))
    else:
        out.append(Check("transcribe.model_gpu", OK, f"{t.model_gpu}: not checked (no GPU)"))
    return out


def _model(key: str, model: str, allow_download: bool) -> Check:
    local = Path(model).expanduser()
    fix = (f"set {key} to the path of a CTranslate2 Whisper model directory, or fetch it "
           f"once with network access (transcribe.allow_download = true)")
    if local.exists() or "/" in model:
        if (local / "model.bin").is_file():
            return Check(key, OK, f"{local}: a local model")
        why = "does not exist" if not local.exists() else "has no model.bin"
        return Check(key, FAIL, f"{local} {why}", fix)
    try:
        from faster_whisper.utils import download_model

        path = download_model(model, local_files_only=True)
    except Exception:
        if allow_download:
            return Check(key, WARN, f"{model!r} is not cached: it is downloaded when the "
                         "daemon starts (needs network)", fix)
        return Check(key, FAIL, f"{model!r} is not available offline", fix)
    return Check(key, OK, f"{model!r} cached at {path}")


def gpu(nvml: Any = None) -> tuple[tuple[Any, ...], Check]:
    from ytpiped import hardware

    found, error, driver = hardware.gpus(nvml=nvml)
    if not found:
        if error and error.startswith("NVML error"):
            return (), Check("GPU (NVML)", FAIL, error, "check the NVIDIA driver "
                             "(nvidia-smi); restart after a driver upgrade")
        return (), Check("GPU (NVML)", OK, f"{error or 'no GPU'}: transcription runs on the "
                         "CPU")
    names = ", ".join(f"{g.index}: {g.name} ({g.total_bytes / 2**30:.0f} GiB)" for g in found)
    return found, Check("GPU (NVML)", OK, f"driver {driver or '?'}; {names}")


#: ctranslate2 (major, minor) from which on -> (CUDA major, cuDNN major) of its wheels
CT2_CUDA = ((4, 5, 12, 9), (4, 0, 12, 8), (3, 0, 11, 8))


def cuda_libraries(load: Callable[[str], object], version: str | None = None) -> Check:
    """Whether the cuBLAS and cuDNN that this ctranslate2 was built for can be loaded
    (they come from the CUDA toolkit or the nvidia-*-cu12 wheels, and must be on the
    loader's path: the usual failure is "Library libcublas.so.12 is not found")."""
    if version is None:
        try:
            import ctranslate2

            version = str(ctranslate2.__version__)
        except ImportError:
            return Check("CUDA libraries", FAIL, "ctranslate2 is not installed",
                         f"{PIP} faster-whisper")
    parts = tuple(int(x) for x in version.split(".")[:2] if x.isdigit())
    cuda, cudnn = next(((c, d) for a, b, c, d in CT2_CUDA if parts >= (a, b)), (11, 8))
    libs = [f"libcublas.so.{cuda}", f"libcublasLt.so.{cuda}"]
    libs += ([f"libcudnn_ops.so.{cudnn}", f"libcudnn_cnn.so.{cudnn}"] if cudnn >= 9 else
             [f"libcudnn_ops_infer.so.{cudnn}", f"libcudnn_cnn_infer.so.{cudnn}"])
    missing = []
    for lib in libs:
        try:
            load(lib)
        except OSError:
            missing.append(lib)
    if missing:
        pkgs = f"nvidia-cublas-cu{cuda} 'nvidia-cudnn-cu{cuda}=={cudnn}.*'"
        return Check("CUDA libraries", FAIL, f"ctranslate2 {version} needs CUDA {cuda} and "
                     f"cuDNN {cudnn}; cannot load {', '.join(missing)}: the GPU cannot "
                     "transcribe", f"install them ({PIP} {pkgs}) and put their lib folders on "
                     "LD_LIBRARY_PATH (python -c 'import os, nvidia.cublas.lib, "
                     "nvidia.cudnn.lib; print(os.path.dirname(nvidia.cublas.lib.__file__) + "
                     "\":\" + os.path.dirname(nvidia.cudnn.lib.__file__))'), e.g. in "
                     "systemd/ytpiped.env")
    return Check("CUDA libraries", OK, f"ctranslate2 {version}: {', '.join(libs)} load")


# --------------------------------------------------------------------------- LLM hosts


async def llm_hosts(settings: Settings) -> list[Check]:
    m = settings.mine
    checks = []
    for spec in m.llm_hosts():
        # a host table's model replaces mine.model there (and eval_model while it is empty)
        models = list(dict.fromkeys([spec.model, m.eval_model or spec.model]))
        checks.append(_openai_host(spec.url, models, m.num_ctx) if spec.api == "openai"
                      else _host(spec.url, models, m.num_ctx))
    return list(await asyncio.gather(*checks))


async def _openai_host(host: str, models: list[str], num_ctx: int) -> Check:
    """An OpenAI-compatible server (vLLM, llama.cpp, LM Studio, SGLang, Ollama's /v1):
    reachable, the models served (/v1/models), its context and slots where it says."""
    from ytpiped.mining.backends import OpenAIBackend

    name = "LLM host"
    backend = OpenAIBackend(host, HOST_TIMEOUT_S)
    try:
        info = await backend.info(models[0])
    finally:
        await backend.close()
    if info is None:
        return Check(name, FAIL, f"{host}: not reachable (OpenAI-compatible API at "
                     f"{backend.base})", "start the server there or correct mine.hosts (the "
                     "server's URL, e.g. http://127.0.0.1:8000/v1)")
    served = [str(x) for x in info["models"] if x]
    absent = [model for model in models if model not in served]
    if absent:
        return Check(name, FAIL, f"{host}: reachable, but it does not serve "
                     f"{', '.join(absent)} (it serves {', '.join(served) or 'nothing'})",
                     "start the server with that model, or set mine.model (or the host "
                     "table's model) to the name it serves")
    slots = info.get("slots")
    serves = (f"serves {slots} request{'s' if slots != 1 else ''} at once" if slots else
              "requests served at once: not reported (the worker pool finds it)")
    ctx = info.get("context_length")
    if ctx and ctx < num_ctx:
        return Check(name, WARN, f"{host}: {', '.join(models)} served; {serves}; its context "
                     f"is {ctx} tokens, less than mine.num_ctx ({num_ctx}): windows are sized "
                     "to it", f"lower mine.num_ctx to {ctx} or start the server with a "
                     "larger context")
    context = f"context {ctx} tokens" if ctx else \
        f"context not reported (mine.num_ctx, {num_ctx}, must not exceed the server's)"
    return Check(name, OK, f"{host}: {', '.join(models)} served (OpenAI API); {serves}; "
                 f"{context}")


async def _host(host: str, models: list[str], num_ctx: int) -> Check:
    import ollama

    from ytpiped.mining.pool import server_slots

    name = "LLM host"
    client = ollama.AsyncClient(host=host, timeout=HOST_TIMEOUT_S)
    try:
        try:
            tags, ps = await asyncio.gather(client.list(), client.ps())
        except Exception as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return Check(name, FAIL, f"{host}: not reachable ({why})",
                         "start Ollama there (`ollama serve`) or correct mine.hosts")
        pulled = {t.model for t in tags.models} | {t.model.removesuffix(":latest")
                                                   for t in tags.models if t.model}
        absent = [model for model in models if model not in pulled]
        if absent:
            return Check(name, FAIL, f"{host}: reachable, but {', '.join(absent)} not pulled",
                         "; ".join(f"OLLAMA_HOST={host} ollama pull {a}" for a in absent))
        loaded = [p for p in ps.models if p.model in models or p.name in models]
        slots = None
        if loaded:
            show = await client.show(loaded[0].model or models[0])
            weights = next((t.size for t in tags.models if t.model == loaded[0].model), None)
            slots = server_slots({"size": loaded[0].size, "weights": weights,
                                  "context_length": loaded[0].context_length or num_ctx,
                                  "model_info": dict(show.modelinfo or {})})
        serves = (f"serves {slots} request{'s' if slots != 1 else ''} at once" if slots else
                  "requests served at once: known once the model is loaded (Ollama's "
                  "OLLAMA_NUM_PARALLEL, 1 by default)")
        return Check(name, OK, f"{host}: {', '.join(models)} pulled; {serves}")
    finally:
        with contextlib.suppress(Exception):
            await client.close()  # type: ignore[no-untyped-call]
