"""Typed, frozen settings: defaults <- TOML file <- environment <- flags.

Every key is a dataclass field with a `spec` (help text, type kind, bounds). Loading
checks each value against its spec; an error names the source (file path, env variable
or flag), the key, and what was expected. `Settings.origins` records where each
effective value came from (`ytpiped config show`).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ytpiped.download import filters
from ytpiped.download import options as ytdlp_opts
from ytpiped.download.meta import SUBTITLE_MODES
from ytpiped.errors import ConfigError
from ytpiped.states import STAGE_NAMES

ENV_PREFIX = "YTPIPED_"
SYSTEM_CONFIG = Path("/etc/ytpiped/ytpiped.toml")

Kind = Literal["str", "int", "float", "bool", "range", "size", "auto_int", "auto_float",
               "choice", "str_list", "float_list", "path", "mode", "table", "list"]


def spec(default: Any, help: str, kind: Kind, *, lo: float | None = None, hi: float | None = None,
         choices: tuple[str, ...] = (), check: Callable[[Any], Any] | None = None,
         expected: str = "") -> Any:
    """A config field: its default, help text and how to validate it. `check` runs after the
    kind's own check and returns the value to keep (it raises ValueError, or
    `ytdlp_opts.Refused` for a message shown as it is); `expected` overrides the kind's
    description in messages and the example file."""
    meta = {"help": help, "kind": kind, "lo": lo, "hi": hi, "choices": choices, "check": check,
            "expected": expected}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int) -> int:
    """'20GB' -> 20_000_000_000; '512MiB' -> 536870912; ints pass through."""
    if isinstance(value, bool):
        raise ValueError("a size, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE_RE.match(str(value))
    if not m or m.group(2).upper() not in _SIZE_UNITS:
        raise ValueError(f"a size like \"20GB\", \"512MiB\" or a number of bytes, not {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


def format_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}TB"  # pragma: no cover


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class AddConfig:
    read_timeout_s: float = spec(10.0, "`ytpiped add` from a pipe, FIFO or device: give up when "
                                 "it yields nothing for this long (nothing is added)", "float",
                                 lo=0.01)


SPONSORBLOCK_CATEGORIES = ("sponsor", "intro", "outro", "selfpromo", "preview", "filler",
                           "interaction", "music_offtopic", "hook")


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http:// or https:// URL")
    return value.rstrip("/")


@dataclass(frozen=True)
class DownloadConfig:
    cookies_file: str = spec("", "Netscape cookies.txt; copied privately before use, never logged",
                             "path")
    delay_buffer_build_s: tuple[float, float] = spec(
        (30.0, 60.0), "randomized pause between downloads while building the buffer", "range")
    delay_steady_s: tuple[float, float] = spec(
        (180.0, 300.0), "randomized pause between downloads once the buffer is built", "range")
    delay_catch_up_s: tuple[float, float] = spec(
        (60.0, 120.0), "randomized pause while the buffer is below low_water", "range")
    buffer_target: int = spec(20, "ready-to-transcribe videos that end the buffer-build phase",
                              "int", lo=1)
    low_water: int = spec(5, "below this many waiting videos: catch-up pacing", "int", lo=0)
    high_water: int = spec(40, "at/above this many waiting videos: stop downloading", "int", lo=1)
    max_buffer_bytes: int = spec(parse_size("20GB"), "stop downloading above this much buffered "
                                 "audio", "size")
    min_free_disk_bytes: int = spec(parse_size("2GB"), "stop downloading when the data dir's disk "
                                    "has less free space than this", "size")
    max_videos_per_hour: int = spec(250, "sliding-window budget of downloads per hour, whatever "
                                    "the phase", "int", lo=1)
    rate_limit_cooldown_s: float = spec(3600.0, "global pause after a 429 / bot check (doubles on "
                                        "repeat)", "float", lo=0)
    max_cooldown_s: float = spec(6 * 3600.0, "cap of the doubling cooldown", "float", lo=0)
    max_attempts: int = spec(5, "failed download attempts before a video is marked failed "
                             "(daemon.max_attempts caps the other stages)", "int", lo=1)
    pacing_group: str = spec("", "hosts with the same pacing group (on one PostgreSQL store) share "
                             "one pacing budget, cooldown and circuit breaker: those that "
                             "download through one IP address or YouTube account (\"\": this "
                             "host's daemon.host_id)", "str")
    keep_audio: bool = spec(False, "keep audio after its transcript is written", "bool")
    socket_timeout_s: float = spec(30.0, "network timeout of one yt-dlp request", "float", lo=1)
    format: str = spec("worstaudio/worst", "yt-dlp format selector (small audio-only by default: "
                       "speech needs no more)", "str")
    js_runtime: str = spec("auto", "JavaScript runtime that solves YouTube's challenges: \"auto\" "
                           "(the deno installed with ytpiped, else deno, node, bun or quickjs "
                           "on PATH), one of those names, or the path of its executable",
                           "str", check=ytdlp_opts.js_runtime,
                           expected="\"auto\", \"deno\", \"node\", \"bun\", \"quickjs\" or a "
                           "path")
    proxy: str = spec("", "proxy URL for every yt-dlp request, e.g. \"socks5://127.0.0.1:1080\" "
                      "(\"\": none)", "str", check=ytdlp_opts.proxy)
    source_address: str = spec("", "local IP address yt-dlp binds to (\"\": the system's choice)",
                               "str", check=ytdlp_opts.source_address)
    extractor_args: dict[str, Any] = spec(
        {}, "yt-dlp extractor arguments, e.g. {youtube = {player_client = [\"default\", "
        "\"mweb\"]}} or a PO-token provider's settings", "table",
        check=ytdlp_opts.extractor_args, expected="a table of extractor names to tables of "
        "arguments")
    sleep_requests_s: float = spec(0.0, "pause between the requests yt-dlp makes while extracting "
                                   "one video (yt-dlp's --sleep-requests)", "float", lo=0)
    ytdlp_options: dict[str, Any] = spec(
        {}, "extra YoutubeDL parameters, e.g. {retries = 5}; keys that run commands, "
        "post-process or write outside the data dir are refused", "table",
        check=ytdlp_opts.ytdlp_options, expected="a table of YoutubeDL parameters")
    breaker_threshold: int = spec(5, "pause every download when this many downloads in a row, "
                                  "of different videos, failed for a reason that is not the "
                                  "video's own (0: never)", "int", lo=0)
    breaker_cooldown_s: float = spec(3600.0, "after such a pause, one probe download decides "
                                     "whether to resume (the pause doubles while probes fail)",
                                     "float", lo=0)
    breaker_max_cooldown_s: float = spec(12 * 3600.0, "cap of the doubling breaker pause",
                                         "float", lo=0)
    other_hosts_delay_s: tuple[float, float] = spec(
        (5.0, 15.0), "randomized pause before each download from a host that is not YouTube "
        "(podcast feeds' episodes and their listings, URLs added directly); YouTube's "
        "phases, budget and cooldowns apply to YouTube only", "range")
    sponsorblock_categories: list[str] = spec(
        [], "SponsorBlock categories whose segments are left out of transcription and mining, "
        "e.g. [\"sponsor\", \"selfpromo\", \"interaction\"] (YouTube videos; marked, "
        "never cut; []: off)", "str_list", choices=SPONSORBLOCK_CATEGORIES)
    sponsorblock_api: str = spec("https://sponsor.ajay.app", "SponsorBlock server yt-dlp asks "
                                 "for the segments", "str", check=_http_url)


@dataclass(frozen=True)
class SourcesConfig:
    follow_interval_h: float = spec(6.0, "how often followed channels, playlists and feeds "
                                    "are listed again for new entries (hours)", "float",
                                    lo=0.0001)
    follow_max_entries: int = spec(50, "newest entries one check of a followed source lists "
                                   "(it stops earlier at the first entry already known)",
                                   "int", lo=1)
    min_duration_s: float = spec(0.0, "skip videos shorter than this (0: no bound)", "float",
                                 lo=0)
    max_duration_s: float = spec(0.0, "skip videos longer than this (0: no bound)", "float",
                                 lo=0)
    after: str = spec("", "skip videos uploaded before this date, \"2024-05-01\" (\"\": no "
                      "bound)", "str", check=filters.date)
    skip_live: bool = spec(False, "skip live streams (upcoming ones wait until they are "
                           "available either way)", "bool")
    skip_shorts: bool = spec(False, "skip YouTube shorts", "bool")
    title_include: str = spec("", "only videos whose title matches this regular expression "
                              "(case-insensitive; \"\": all)", "str", check=filters.regex)
    title_exclude: str = spec("", "skip videos whose title matches this regular expression "
                              "(case-insensitive; \"\": none)", "str", check=filters.regex)


@dataclass(frozen=True)
class AnalyzeConfig:
    backend: str = spec("auto", "loudness backend: auto (torch on a GPU if installed, else cpu), "
                        "cpu or torch", "choice", choices=("auto", "cpu", "torch"))
    silence_threshold_lu: float = spec(-20.0, "short-term loudness this far below the integrated "
                                       "level counts as silence", "float", hi=0)
    min_silence_s: float = spec(0.6, "shortest pause recorded as a silence", "float", lo=0)
    max_batch_size: int = spec(16, "files per batch on the torch backend", "int", lo=1)
    batch_timeout_s: float = spec(2.0, "wait at most this long to fill a batch", "float", lo=0)
    max_batch_samples: int = spec(16_000 * 3600 * 4, "cap on total samples per torch batch "
                                  "(memory)", "int", lo=1)


@dataclass(frozen=True)
class TranscribeConfig:
    model_gpu: str = spec("large-v3-turbo", "name or path of a CTranslate2 Whisper model for GPUs",
                          "str")
    model_cpu: str = spec("small", "name or path of a CTranslate2 Whisper model for the CPU", "str")
    compute_type_gpu: str = spec("float16", "CTranslate2 compute type on GPUs", "str")
    compute_type_cpu: str = spec("int8", "CTranslate2 compute type on the CPU", "str")
    language: str = spec("", "language code; empty: detect", "str")
    gpu_slots: int | None = spec(None, "\"auto\" or slots per GPU", "auto_int", lo=0)
    cpu_slots: int | None = spec(None, "\"auto\" or number of CPU slots", "auto_int", lo=0)
    model_vram_gb: float | None = spec(None, "\"auto\" (from the model table) or GB per GPU slot",
                                       "auto_float", lo=0.1)
    reserved_vram_mb: int = spec(500, "VRAM reserved by the driver when NVML cannot say", "int",
                                 lo=0)
    other_vram_gb: float = spec(0.0, "VRAM kept free for other users of the GPU (e.g. Ollama)",
                                "float", lo=0)
    max_cpu_time_s: float = spec(300.0, "benefit policy: CPU only takes jobs predicted to finish "
                                 "within this", "float", lo=0)
    stop_cpu_at_progress: float = spec(0.8, "benefit policy: no new CPU work past this fraction "
                                       "done", "float", lo=0, hi=1)
    policy: str = spec("ect", "\"ect\" (earliest completion) or \"benefit\" (GPU-benefit sort + "
                       "endgame rule)", "choice", choices=("ect", "benefit"))
    batch_size: int = spec(8, "30-s windows per batched forward pass on a GPU slot (1: the "
                           "sequential decoder)", "int", lo=1)
    batch_size_cpu: int = spec(8, "the same on a CPU slot (8 measured fastest on a 2-core "
                               "machine, benchmarks/transcribe_cpu)", "int", lo=1)
    max_batch_audio_s: float = spec(600.0, "short chunks of different videos (same model, "
                                    "language and options) run as one batched pass on a slot "
                                    "up to this much audio in all", "float", lo=1)
    beam_size: int = spec(5, "Whisper beam size", "int", lo=1, hi=20)
    temperature: list[float] = spec([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "Whisper sampling "
                                    "temperatures: a window whose text fails Whisper's checks "
                                    "(compression ratio > 2.4, avg log-prob < -1) is decoded "
                                    "again at the next one", "float_list", lo=0, hi=1)
    condition_on_previous_text: bool = spec(False, "feed each window the text of the one "
                                            "before (more consistent, but repetition loops; "
                                            "true makes every slot unbatched)", "bool")
    vad_filter: bool = spec(False, "skip non-speech with Silero VAD before decoding", "bool")
    word_timestamps: bool = spec(False, "word-level times in the JSON transcript "
                                 "(segments[].words)", "bool")
    initial_prompt: str = spec("", "text given to Whisper as the context of the first window "
                               "(names, spelling, style)", "str")
    hotwords: str = spec("", "words Whisper should favour (names, jargon)", "str")
    gpu_slots_adaptive: bool = spec(True, "use between 1 and the VRAM ceiling of GPU slots, "
                                    "one more while throughput rises by 5 %, one fewer when it "
                                    "does not", "bool")
    cuda_context_gb: float = spec(0.4, "VRAM one worker process's CUDA context takes (part of "
                                  "the slot ceiling)", "float", lo=0)
    chunk_attempts: int = spec(3, "tries of one chunk on the engines (a crash, hang or "
                               "out-of-memory moves it to another slot) before the video's "
                               "attempt fails", "int", lo=1)
    max_chunk_s: float = spec(900.0, "longest piece of audio transcribed as one job", "float",
                              lo=30)
    output_formats: list[str] = spec(["json", "txt", "srt", "vtt"], "transcript files to write; "
                                     "the JSON transcript (the pipeline's own record) is always "
                                     "written, the others are extras",
                                     "str_list", choices=("json", "txt", "srt", "vtt"))
    allow_download: bool = spec(True, "fetch model names that are not cached locally from the "
                                "model hub (false: local paths and cached models only)", "bool")
    youtube_subtitles: str = spec("never", "use a YouTube video's own subtitles in the "
                                  "wanted language (transcribe.language, else the video's) "
                                  "instead of Whisper: \"never\", \"manual\" (human-made "
                                  "only) or \"any\" (automatic ones too); the audio is then "
                                  "not downloaded", "choice", choices=SUBTITLE_MODES)
    job_timeout_factor: float = spec(4.0, "a job running this many times its predicted time "
                                     "(+60 s) is a hang", "float", lo=1)


LLM_APIS = ("ollama", "openai")
HOST_KEYS = ("url", "api", "model")


@dataclass(frozen=True)
class LLMHost:
    """One `mine.hosts` entry with the section's defaults filled in."""

    url: str
    api: str
    model: str  # replaces mine.model on this host (and eval_model while that is empty)


def _llm_hosts(value: list[Any]) -> list[Any]:
    """Each entry a URL, or a table {url, api, model} for a host that speaks another API or
    names the model differently (vLLM: the Hugging Face name)."""
    for i, entry in enumerate(value, 1):
        if isinstance(entry, str):
            if not entry.strip():
                raise ytdlp_opts.Refused(f"expected a non-empty list; entry {i} is blank")
            continue
        if not isinstance(entry, dict):
            raise ytdlp_opts.Refused(f"entry {i} is {type(entry).__name__} {entry!r}: expected "
                                     "a URL string or a table {url = \"…\", api = \"ollama\" "
                                     "or \"openai\", model = \"…\"}")
        unknown = sorted(set(entry) - set(HOST_KEYS))
        if unknown:
            raise ytdlp_opts.Refused(f"entry {i}: unknown key {unknown[0]!r} (a host table has "
                                     "url, api and model)")
        url = entry.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ytdlp_opts.Refused(f"entry {i}: \"url\" is missing or blank (e.g. url = "
                                     "\"http://127.0.0.1:8000/v1\")")
        if "api" in entry and entry["api"] not in LLM_APIS:
            raise ytdlp_opts.Refused(f"entry {i} ({url}): api must be \"ollama\" or "
                                     f"\"openai\", not {entry['api']!r}")
        if "model" in entry and (not isinstance(entry["model"], str)
                                 or not entry["model"].strip()):
            raise ytdlp_opts.Refused(f"entry {i} ({url}): model must be a non-blank string")
    return value


@dataclass(frozen=True)
class MineConfig:
    hosts: list[Any] = spec(["http://127.0.0.1:11434"], "LLM servers; work is spread by least "
                            "outstanding requests. An entry is a URL (speaking mine.api) or a "
                            "table {url, api, model} for a server that speaks another API or "
                            "calls the model by another name", "list", lo=1, check=_llm_hosts,
                            expected="a non-empty list of URLs or {url = \"…\", api = "
                            "\"ollama\"|\"openai\", model = \"…\"} tables")
    api: str = spec("ollama", "API of the hosts given as plain URLs: \"ollama\" (Ollama's own "
                    "API) or \"openai\" (chat completions with a JSON schema: vLLM, SGLang, "
                    "llama.cpp's server, LM Studio, Ollama's /v1)", "choice", choices=LLM_APIS)
    model: str = spec("qwen2.5:7b-instruct", "model that mines windows (the name the servers "
                      "know it by)", "str")
    eval_model: str = spec("", "model for the per-video evaluation; empty: same as model", "str")
    num_ctx: int = spec(8192, "context length: sent with every Ollama request (its own default "
                        "can be huge); with api = \"openai\" the server's context, used to size "
                        "windows when the server does not report it", "int", lo=512)
    answer_tokens: int = spec(1024, "most tokens one answer may have (Ollama num_predict, OpenAI "
                              "max_tokens); kept free in the context", "int", lo=64)
    workers: int | None = spec(None, "\"auto\" or a fixed number of concurrent LLM requests",
                               "auto_int", lo=1)
    max_workers: int = spec(16, "upper bound of the adaptive pool", "int", lo=1)
    eval_workers: int = spec(2, "videos evaluated at once; their requests share the pool with "
                             "mining", "int", lo=1)
    model_ram_gb: float = spec(6.0, "RAM one copy of the model needs (auto sizing)", "float", lo=0)
    reserved_ram_gb: float = spec(4.0, "RAM left for everything else (auto sizing)", "float", lo=0)
    request_timeout_s: float = spec(300.0, "timeout of one LLM request", "float", lo=1)
    keep_alive: str = spec("30m", "how long Ollama keeps the model loaded", "str")
    window_tokens: int = spec(1500, "transcript tokens per mining window, at most: smaller when "
                              "the model's context (num_ctx, or what the server reports) cannot "
                              "hold a window, the prompt and answer_tokens", "int", lo=100)
    overlap_tokens: int = spec(200, "tokens shared by neighbouring windows", "int", lo=0)
    window_attempts: int = spec(4, "tries of one request after 503/timeout/disconnect/5xx before "
                                "mining and evaluation pause (no attempt spent)", "int", lo=1)
    retry_base_s: float = spec(2.0, "pause before retrying a window request (doubles per try, "
                               "capped at 60 s)", "float", lo=0)
    unavailable_backoff_s: float = spec(30.0, "LLM server busy, unreachable, restarting or not "
                                        "answering: mining and evaluation pause this long "
                                        "(doubling while it stays so), no attempt spent",
                                        "float", lo=0)
    max_unavailable_backoff_s: float = spec(600.0, "longest such pause while the server stays "
                                            "busy or down", "float", lo=0)
    model_switch_s: float = spec(120.0, "requests for another model (evaluation) wait at most "
                                 "this long for the running one before the server switches",
                                 "float", lo=0)

    def llm_hosts(self) -> list[LLMHost]:
        """`hosts` with `api` and `model` filled in, duplicates (same URL) dropped."""
        out: dict[str, LLMHost] = {}
        for entry in self.hosts:
            e = {"url": entry} if isinstance(entry, str) else dict(entry)
            url = str(e["url"]).strip()
            out.setdefault(url, LLMHost(url, str(e.get("api") or self.api),
                                        str(e.get("model") or self.model)))
        return list(out.values())


def _host_id(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,63}", value):
        raise ValueError("a name of letters, digits, '.', '_' or '-' (at most 63 characters; "
                         "\"\" for the machine's host name)")
    return value


@dataclass(frozen=True)
class DaemonConfig:
    shutdown_grace_s: float = spec(30.0, "on SIGTERM, wait this long for work in flight", "float",
                                   lo=0)
    metrics_port: int = spec(0, "0: off; else Prometheus /metrics (and /healthz) on "
                             "metrics_bind:PORT", "int", lo=0, hi=65535)
    metrics_bind: str = spec("127.0.0.1", "IP address the metrics port listens on; 0.0.0.0 or "
                             "an interface's address lets a remote Prometheus scrape, and "
                             "anyone who reaches it read the counts", "str")
    lease_s: float = spec(120.0, "lease of a claimed video; renewed while work runs", "float", lo=1)
    reap_interval_s: float = spec(15.0, "how often expired leases are returned", "float", lo=0.05)
    poll_interval_s: float = spec(5.0, "longest wait before looking for new work", "float",
                                  lo=0.01)
    retry_base_s: float = spec(30.0, "first retry delay after a failure; doubles per attempt "
                               "(jittered)", "float", lo=0)
    retry_max_s: float = spec(3600.0, "cap of the retry delay", "float", lo=0)
    stages: list[str] = spec([], "the stages this host runs, where several hosts share one store "
                             "(e.g. [\"download\", \"analyze\", \"transcribe\"] on a GPU host "
                             "and [\"mine\", \"evaluate\"] beside the LLM server); empty: all",
                             "str_list", choices=STAGE_NAMES)
    stage_factory: str = spec("", "\"module:function\" returning the stages to run; empty: the "
                              "built-in pipeline (tests and extensions)", "str")
    max_attempts: int = spec(5, "failed attempts before a video is marked failed in analysis, "
                             "transcription, mining or evaluation (download.max_attempts caps "
                             "downloads)", "int", lo=1)
    umask: int = spec(0o027, "permission bits taken away from everything created under the "
                      "data dir (0o027: files 0640, folders 0750; group members may read, "
                      "others nothing); the socket and .private/ stay owner-only", "mode")
    host_id: str = spec("", "this host's name where several hosts share one store (lease "
                        "owners, events, `status --hosts`); empty: the machine's host name",
                        "str", check=_host_id,
                        expected="a name of letters, digits, '.', '_' or '-' (at most 63)")



NOTIFY_EVENTS = ("alert", "breaker_open", "queue_drained", "stopped")


def _notify_url(key: str) -> Callable[[Any], Any]:
    def check(value: str) -> str:
        from urllib.parse import urlsplit

        if not value:
            return value
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            ok = False
        if not ok:  # the value is not repeated: it may carry a token
            raise ytdlp_opts.Refused(f"expected an http:// or https:// URL with a host name "
                                     f"(the value is not shown: {key} may hold a token); \"\" "
                                     "turns it off")
        return value
    return check


@dataclass(frozen=True)
class NotifyConfig:
    webhook: str = spec("", "URL that gets a JSON POST per notification ({\"event\", \"title\", "
                        "\"message\", \"host\", \"time\", …} and a Slack-style \"text\"); "
                        "empty: off. Treated as a secret: never logged", "str",
                        check=_notify_url("notify.webhook"))
    ntfy: str = spec("", "ntfy topic URL (https://ntfy.sh/TOPIC or your own server's) that "
                     "gets each notification with a title, priority and tags; empty: off. "
                     "Treated as a secret: never logged", "str", check=_notify_url("notify.ntfy"))
    events: list[str] = spec(list(NOTIFY_EVENTS), "what is sent: alert (a new ALERT line in "
                             "`ytpiped status`), breaker_open (the download circuit breaker "
                             "opened), queue_drained (the last queued video reached done or "
                             "failed), stopped (the daemon stopped unexpectedly)", "str_list",
                             choices=NOTIFY_EVENTS)
    min_interval_s: float = spec(600.0, "at most one notification per event (and stage) in this "
                                 "long; the ones held back are counted in the next", "float", lo=0)
    timeout_s: float = spec(10.0, "give up on an endpoint after this long (the daemon never "
                            "waits for one)", "float", lo=0.1, hi=300)


def _web_token(value: str) -> str:
    if value and len(value) < 16:  # the value is not repeated: it is a secret
        raise ytdlp_opts.Refused("expected at least 16 characters (the value is not shown: "
                                 "web.token is a secret), e.g. from `openssl rand -hex 16`; "
                                 "\"\" turns it off")
    return value


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = spec(True, "serve the web page from the daemon (overview, plots, failures, "
                         "each video's transcript and claims); `ytpiped web` serves it "
                         "read-only without a daemon", "bool")
    bind: str = spec("127.0.0.1", "IP address the web page listens on; keep 127.0.0.1 and "
                     "reach it from elsewhere through an SSH tunnel (README). On any other "
                     "address it is read-only unless web.token is set", "str")
    port: int = spec(8765, "TCP port of the web page (0: any free port)", "int", lo=0,
                     hi=65535)
    token: str = spec("", "when set, every request needs it (open the page once as "
                      "/?token=TOKEN, or send `Authorization: Bearer TOKEN`) and the page's "
                      "actions work on any address. Treated as a secret: never logged or shown",
                      "str", check=_web_token, expected="\"\" or a secret of 16+ characters")
    history_interval_s: float = spec(300.0, "how often the daemon keeps a point of the plots' "
                                     "history (a week of points is kept)", "float", lo=1,
                                     hi=3600)
    refresh_s: float = spec(10.0, "the overview reloads its figures this often (0: never)",
                            "float", lo=0)


def _store_url(value: str) -> str:
    """sqlite:/// (the data dir's ytpiped.db) or a postgresql:// URL; the value is never
    repeated in a message (it may hold a password)."""
    from urllib.parse import urlsplit

    if value in ("", "sqlite://", "sqlite:///"):
        return "sqlite:///"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
        ok = parts.scheme in ("postgresql", "postgres")
    except ValueError:
        ok = False
    if not ok:
        raise ytdlp_opts.Refused(
            "expected \"sqlite:///\" (the data dir's ytpiped.db) or a PostgreSQL URL such as "
            "\"postgresql://ytpiped@db.example/ytpiped\" (the value is not shown: it may hold "
            "a password; prefer PGPASSWORD or ~/.pgpass)")
    return value


@dataclass(frozen=True)
class StoreConfig:
    url: str = spec("sqlite:///", "where the state lives: \"sqlite:///\" is DATA/ytpiped.db "
                    "(one host, no setup); \"postgresql://USER@HOST:PORT/DB\" lets several "
                    "hosts run `ytpiped run` on one database (README: Outgrowing one machine). "
                    "Treated as a secret: never logged", "str", check=_store_url,
                    expected="\"sqlite:///\" or \"postgresql://…\"")
    shared_files: bool = spec(False, "PostgreSQL store: every host sees the same data dir (e.g. "
                              "NFS), so any host may work on any video; false: every stage after "
                              "the download runs on the host that downloaded the video, "
                              "and downloaded again elsewhere once that host is silent for "
                              "store.host_silent_s", "bool")
    host_silent_s: float = spec(300.0, "PostgreSQL store: a host that has not reported for this "
                                "long is shown as silent, and (without shared_files) the audio "
                                "it holds is downloaded again by another host", "float", lo=1)


@dataclass(frozen=True)
class Settings:
    data_dir: str = spec("~/.local/share/ytpiped", "where the database, audio and outputs live",
                         "path")
    add: AddConfig = field(default_factory=AddConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    mine: MineConfig = field(default_factory=MineConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    web: WebConfig = field(default_factory=WebConfig)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    #: problems that do not stop a command (unknown YTPIPED_* variables), for the CLI to show
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()


SECTIONS: dict[str, type[Any]] = {
    f.name: f.type if isinstance(f.type, type) else globals()[str(f.type)]
    for f in dataclasses.fields(Settings)
    if f.name not in ("data_dir", "origins", "warnings")
}


def all_keys() -> list[tuple[str, dataclasses.Field[Any]]]:
    """Every key as ('section.key' or 'data_dir', field), in documentation order."""
    out: list[tuple[str, dataclasses.Field[Any]]] = []
    for f in dataclasses.fields(Settings):
        if f.name == "data_dir":
            out.append((f.name, f))
    for section, cls in SECTIONS.items():
        out.extend((f"{section}.{f.name}", f) for f in dataclasses.fields(cls))
    return out


# --------------------------------------------------------------------------- validation


def _bounds(f: dataclasses.Field[Any]) -> str:
    m = f.metadata
    if m["lo"] is not None and m["hi"] is not None:
        return f" between {m['lo']:g} and {m['hi']:g}"
    if m["lo"] is not None:
        return f" >= {m['lo']:g}"
    if m["hi"] is not None:
        return f" <= {m['hi']:g}"
    return ""


def _expected(f: dataclasses.Field[Any]) -> str:
    m = f.metadata
    kind = m["kind"]
    if m.get("expected"):
        return str(m["expected"])
    bounds = _bounds(f)
    return {
        "str": "a string",
        "path": "a path (string)",
        "int": f"an integer{bounds}",
        "float": f"a number{bounds}",
        "bool": "true or false",
        "range": "[min, max] of finite numbers with 0 <= min <= max",
        "size": "a size like \"20GB\", \"512MiB\" or a number of bytes",
        "auto_int": f"\"auto\" or an integer{bounds}",
        "auto_float": f"\"auto\" or a number{bounds}",
        "choice": "one of " + ", ".join(f'"{c}"' for c in m["choices"]),
        "mode": "octal permission bits such as 0o027",
        "table": "a table",
        "list": "a non-empty list" if m["lo"] else "a list",
        "str_list": ("a non-empty list of non-blank strings" if m["lo"] else "a list of strings")
        + (" from " + ", ".join(f'"{c}"' for c in m["choices"]) if m["choices"] else ""),
        "float_list": f"a non-empty list of numbers{bounds}",
    }[kind]


def _in_bounds(f: dataclasses.Field[Any], x: float) -> bool:
    lo, hi = f.metadata["lo"], f.metadata["hi"]
    return math.isfinite(x) and (lo is None or x >= lo) and (hi is None or x <= hi)


def coerce(f: dataclasses.Field[Any], value: Any) -> Any:
    """Check `value` against the field's spec; return the typed value or raise ValueError."""
    typed = _coerce_kind(f, value)
    check = f.metadata.get("check")
    return typed if check is None else check(typed)


def _coerce_kind(f: dataclasses.Field[Any], value: Any) -> Any:
    kind: Kind = f.metadata["kind"]
    bad = ValueError(_expected(f))
    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "choice":
        if value not in f.metadata["choices"]:
            raise bad
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind in ("auto_int", "auto_float") and value == "auto":
        return None
    if kind in ("int", "auto_int"):
        if isinstance(value, bool) or not isinstance(value, int) or not _in_bounds(f, value):
            raise bad
        return value
    if kind in ("float", "auto_float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        if not math.isfinite(value):
            raise ValueError(f"a finite number{_bounds(f)}")
        if not _in_bounds(f, float(value)):
            raise bad
        return float(value)
    if kind == "mode":  # permission bits: 0o027 in TOML, or "027" / "0o027" as text
        if isinstance(value, str) and re.fullmatch(r"(0o)?[0-7]{1,4}", value.strip()):
            value = int(value.strip().removeprefix("0o"), 8)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
            raise bad
        return value
    if kind == "table":
        if not isinstance(value, dict):
            raise bad
        return value
    if kind == "list":
        if not isinstance(value, list) or len(value) < (f.metadata["lo"] or 0):
            raise bad
        return list(value)
    if kind == "size":
        try:
            return parse_size(value)
        except ValueError:
            raise bad from None
    if kind == "range":
        if (not isinstance(value, list | tuple) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)):
            raise bad
        lo, hi = float(value[0]), float(value[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("[min, max] of finite numbers (no nan or inf)")
        if lo < 0 or hi < 0:
            raise ValueError("[min, max] with values >= 0")
        if lo > hi:
            raise ValueError(f"[min, max] with min <= max (got min {lo:g} > max {hi:g})")
        return (lo, hi)
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
        choices = f.metadata["choices"]
        if choices and any(v not in choices for v in value):
            raise bad
        if f.metadata["lo"] and (len(value) < f.metadata["lo"]
                                 or any(not v.strip() for v in value)):
            raise bad
        return list(value)
    if kind == "float_list":
        if (not isinstance(value, list | tuple) or not value
                or any(isinstance(v, bool) or not isinstance(v, int | float)
                       or not _in_bounds(f, float(v)) for v in value)):
            raise bad
        return [float(v) for v in value]
    raise AssertionError(kind)  # pragma: no cover


def _parse_env_value(f: dataclasses.Field[Any], raw: str) -> Any:
    """Environment values are TOML literals when they parse as such, else plain strings."""
    if f.metadata["kind"] in ("str", "path", "choice"):
        return raw
    import tomllib  # here, not at the top: `status` with no file or such value skips it

    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if f.metadata["kind"] in ("str_list", "list"):
            return [part.strip() for part in raw.split(",") if part.strip()]
        return raw


# --------------------------------------------------------------------------- loading


class InvalidConfig(ConfigError):
    """Every problem loading found, each naming its source (file, env variable or flag)
    and the key, so one `config check` shows them all."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems[0] if len(self.problems) == 1 else
                         f"{len(self.problems)} configuration errors:\n"
                         + "\n".join(f"  {p}" for p in self.problems))


@functools.cache
def _fields() -> dict[str, dataclasses.Field[Any]]:
    return dict(all_keys())


def _field_of(dotted: str) -> dataclasses.Field[Any] | None:
    return _fields().get(dotted)


def suggest(dotted: str) -> str | None:
    """The valid key a misspelt or misplaced `dotted` most likely meant, or None: the same
    key name in another section first, else the closest spelling."""
    name = dotted.rpartition(".")[2]
    same_name = [k for k in _fields() if k.rpartition(".")[2] == name]
    if same_name:
        return same_name[0]
    import difflib

    close = difflib.get_close_matches(dotted, list(_fields()), n=1, cutoff=0.7)
    return close[0] if close else None


def _unknown_key(source: str, dotted: str) -> str:
    guess = suggest(dotted)
    hint = f"did you mean '{guess}'? " if guess else ""
    return f"{source}: unknown key '{dotted}' ({hint}see `ytpiped config show` for the valid keys)"


class _Loader:
    """Typed values and their sources, gathered from file, environment and flags; every
    problem is kept in `problems` and loading goes on, to report them all at once."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str] = {}
        self.problems: list[str] = []
        self.bad_keys: set[str] = set()

    def apply(self, dotted: str, value: Any, source: str) -> None:
        f = _field_of(dotted)
        if f is None:
            self.problems.append(_unknown_key(source, dotted))
            return
        try:
            typed = coerce(f, value)
        except ytdlp_opts.Refused as exc:
            self.fail(dotted, f"{source}: key '{dotted}': {exc}")
            return
        except ValueError as exc:
            self.fail(dotted, f"{source}: key '{dotted}': expected {exc}, got {value!r}")
            return
        section, _, key = dotted.rpartition(".")
        self.values.setdefault(section, {})[key] = typed
        self.sources[dotted] = source

    def fail(self, dotted: str, problem: str) -> None:
        self.problems.append(problem)
        self.bad_keys.add(dotted)

    def file(self, path: Path) -> None:
        try:
            doc = read_toml(path)
        except ConfigError as exc:
            self.problems.append(str(exc))
            return
        for k, v in doc.items():
            if not isinstance(v, dict):
                self.apply(k, v, str(path))
            elif k in SECTIONS:
                for kk, vv in v.items():
                    self.apply(f"{k}.{kk}", vv, str(path))
            else:
                import difflib

                close = difflib.get_close_matches(k, list(SECTIONS), n=1, cutoff=0.6)
                hint = f"did you mean [{close[0]}]? " if close else ""
                self.problems.append(f"{path}: unknown section [{k}] ({hint}valid: "
                                     + ", ".join(SECTIONS) + ")")


def read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def user_config(env: Mapping[str, str]) -> Path | None:
    """$XDG_CONFIG_HOME/ytpiped/ytpiped.toml; ~/.config/ytpiped/ytpiped.toml when
    XDG_CONFIG_HOME is unset, empty or relative (the XDG base directory rules)."""
    base = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        home = env.get("HOME", "")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".config")
    return Path(base) / "ytpiped" / "ytpiped.toml"


def config_path(flag: str | None, env: Mapping[str, str]) -> Path | None:
    """--config, else $YTPIPED_CONFIG, else the first that exists of the user's
    $XDG_CONFIG_HOME/ytpiped/ytpiped.toml (~/.config/…) and /etc/ytpiped/ytpiped.toml."""
    if flag:
        return Path(flag).expanduser()
    if env.get("YTPIPED_CONFIG"):
        return Path(env["YTPIPED_CONFIG"]).expanduser()
    for path in (user_config(env), SYSTEM_CONFIG):
        if path is not None and path.is_file():
            return path
    return None


def load(file: Path | None = None, env: Mapping[str, str] | None = None,
         flags: Mapping[str, Any] | None = None, *, strict_env: bool = False,
         check_cookies: bool = False) -> Settings:
    """Build Settings from defaults <- file <- env (YTPIPED_<SECTION>__<KEY>) <- flags.

    `flags` maps dotted keys ("download.max_attempts", "data_dir") to already-typed values
    or strings as typed on the command line. A YTPIPED_* variable that names no key is a
    warning in `Settings.warnings` (one stray variable must not stop every command), or
    an error with `strict_env` (`config check`). `check_cookies` also checks the file
    `download.cookies_file` names (`config check`). Every problem found is reported in
    one InvalidConfig.
    """
    loader = _Loader()
    warnings: list[str] = []
    if file is not None:
        loader.file(file)
    for name, raw in sorted((env or {}).items()):
        if not name.startswith(ENV_PREFIX) or name == "YTPIPED_CONFIG":
            continue
        dotted = name[len(ENV_PREFIX):].lower().replace("__", ".", 1)
        f = _field_of(dotted)
        if f is None:
            guess = suggest(dotted)
            hint = f"did you mean {env_name(guess)}? " if guess else ""
            problem = (f"environment variable {name}: unknown key '{dotted}' ({hint}variables "
                       "are YTPIPED_<SECTION>__<KEY>; see `ytpiped config show` for the keys)")
            if strict_env:
                loader.problems.append(problem)
            else:
                warnings.append(problem + "; ignored")
            continue
        loader.apply(dotted, _parse_env_value(f, raw), f"env {name}")
    for dotted, value in (flags or {}).items():
        f = _field_of(dotted)
        if f is not None and isinstance(value, str):
            value = _parse_env_value(f, value)
        loader.apply(dotted, value, f"flag {dotted}")
    if "download.max_attempts" in loader.sources and "daemon.max_attempts" not in loader.sources:
        # the key once capped every stage: keep that meaning until the new key is set
        where = loader.sources["download.max_attempts"]
        loader.values.setdefault("daemon", {})["max_attempts"] = \
            loader.values["download"]["max_attempts"]
        loader.sources["daemon.max_attempts"] = f"{where} (via download.max_attempts)"
        warnings.append(f"{where}: key 'download.max_attempts' now caps downloads only; until "
                        "'daemon.max_attempts' is set it caps the other stages too (deprecated: "
                        "set daemon.max_attempts)")
    sections = {name: cls(**loader.values.get(name, {})) for name, cls in SECTIONS.items()}
    top = loader.values.get("", {})
    settings = Settings(**top, **sections, origins=loader.sources, warnings=tuple(warnings))
    for keys, problem in _relation_problems(settings):
        if not loader.bad_keys & set(keys):  # a bad value already reported: no echo of it
            loader.problems.append(problem)
    cookies = cookies_problem(settings) if check_cookies else None
    if cookies is not None and COOKIES_KEY not in loader.bad_keys:
        loader.problems.append(cookies)
    if loader.problems:
        raise InvalidConfig(loader.problems)
    return settings


def _relation_problems(s: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Problems of values that are fine alone but not together: (keys involved, message)."""
    out: list[tuple[tuple[str, ...], str]] = []
    d = s.download
    src = s.origins
    if d.low_water >= d.high_water:
        where = src.get("download.low_water") or src.get("download.high_water") or "defaults"
        out.append((("download.low_water", "download.high_water"),
                    f"{where}: key 'download.low_water' ({d.low_water}) must be below "
                    f"'download.high_water' ({d.high_water})"))
    if d.buffer_target > d.high_water:
        where = src.get("download.buffer_target") or src.get("download.high_water") or "defaults"
        out.append((("download.buffer_target", "download.high_water"),
                    f"{where}: key 'download.buffer_target' ({d.buffer_target}) must not "
                    f"exceed 'download.high_water' ({d.high_water})"))
    bind = s.daemon.metrics_bind
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        where = src.get("daemon.metrics_bind") or "defaults"
        out.append((("daemon.metrics_bind",),
                    f"{where}: key 'daemon.metrics_bind': expected an IP address such as "
                    f"127.0.0.1 (or 0.0.0.0 for every interface), got {bind!r}"))
    for key, value in (("web.bind", s.web.bind),):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            where = src.get(key) or "defaults"
            out.append(((key,), f"{where}: key '{key}': expected an IP address such as "
                        f"127.0.0.1 (or 0.0.0.0 for every interface), got {value!r}"))
    m = s.mine
    if m.overlap_tokens >= m.window_tokens:
        where = src.get("mine.overlap_tokens") or "defaults"
        out.append((("mine.overlap_tokens", "mine.window_tokens"),
                    f"{where}: key 'mine.overlap_tokens' ({m.overlap_tokens}) must be below "
                    f"'mine.window_tokens' ({m.window_tokens})"))
    if m.answer_tokens * 4 > m.num_ctx:
        where = src.get("mine.answer_tokens") or src.get("mine.num_ctx") or "defaults"
        out.append((("mine.answer_tokens", "mine.num_ctx"),
                    f"{where}: key 'mine.answer_tokens' ({m.answer_tokens}) must be at most a "
                    f"quarter of 'mine.num_ctx' ({m.num_ctx}): the context also holds the "
                    "prompt, a window and, for a repair request, the rejected answer"))
    return out


#: the first line http.cookiejar (and so yt-dlp) insists on in a cookies.txt
_NETSCAPE_MAGIC = re.compile(rb"#( Netscape)? HTTP Cookie File")
COOKIES_KEY = "download.cookies_file"


def cookies_file_problem(value: str) -> str | None:
    """What makes the cookies file at `value` unusable for yt-dlp, or None when it looks
    fine ("" = no cookies). Reads at most its first 4 KiB and never returns any of it."""
    if not value:
        return None
    path = Path(value).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be checked ({exc.strerror or type(exc).__name__})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a pipe or a device cannot be copied for each session)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return f"cannot be read ({(exc.strerror or type(exc).__name__).lower()})"
    try:
        head = os.read(fd, 4096)
    except OSError as exc:
        return f"cannot be read ({(exc.strerror or type(exc).__name__).lower()})"
    finally:
        os.close(fd)
    if not head.strip():
        return "is empty"
    if not _NETSCAPE_MAGIC.match(head):
        if head.lstrip()[:1] in (b"[", b"{"):
            return "is JSON, not the Netscape cookies.txt format"
        return ("is not in the Netscape cookies.txt format (its first line must be "
                "\"# Netscape HTTP Cookie File\")")
    return None


def cookies_problem(settings: Settings) -> str | None:
    """The error naming the key, where it was set, the path and what is wrong, when
    `download.cookies_file` is set but unusable; None when it is fine."""
    value = settings.download.cookies_file
    problem = cookies_file_problem(value)
    if problem is None:
        return None
    path = Path(value).expanduser()
    shown = str(path) if path.is_absolute() else f"{path} (= {path.absolute()})"
    where = settings.origins.get(COOKIES_KEY, "default")
    return (f"{where}: key '{COOKIES_KEY}': {shown} {problem}; export cookies.txt in Netscape "
            "format from a logged-in browser to that path, or set it to \"\" to download "
            "without cookies")


def check_cookies_file(settings: Settings) -> None:
    """Raise a ConfigError when `download.cookies_file` is set but unusable (`run`
    start-up; `config check` loads with `check_cookies`)."""
    problem = cookies_problem(settings)
    if problem is not None:
        raise ConfigError(problem)


def value_of(settings: Settings, dotted: str) -> Any:
    obj: Any = settings
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def to_toml_value(value: Any) -> str:
    """`value` as a TOML literal that reads back as the same value (None: "auto")."""
    if value is None:
        return '"auto"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{" + ", ".join(f"{_toml_key(k)} = {to_toml_value(v)}"
                               for k, v in value.items()) + "}"
    return str(value)


_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                 "\r": "\\r"}


def _toml_string(text: str) -> str:
    """A TOML basic string; control characters escaped (they are not allowed raw)."""
    return '"' + re.sub(r'[\\"\x00-\x1f\x7f]', lambda m: _TOML_ESCAPES.get(
        m.group(), f"\\u{ord(m.group()):04x}"), text) + '"'


def _toml_key(key: object) -> str:
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else _toml_string(text)


def toml_value_of(f: dataclasses.Field[Any], value: Any) -> str:
    """How a key's value is written in a config file: sizes as "20GB" (when that is exact),
    permission bits in octal, the rest as TOML literals."""
    kind = f.metadata["kind"]
    if kind == "size":
        shown = format_size(value)
        return _toml_string(shown) if parse_size(shown) == value else str(value)
    if kind == "mode":
        return f"0o{value:03o}"
    return to_toml_value(value)


def render_effective(settings: Settings) -> str:
    """`config show --toml`: every key with the value in effect and, as a comment, where it
    came from; a config file that `config check` accepts and that loads to `settings`."""
    lines = ["# ytpiped effective configuration (`ytpiped config show --toml`): every key with",
             "# the value in effect; the comment says where it came from.", ""]
    section = ""
    for dotted, value, source in effective(settings):
        head, _, name = dotted.rpartition(".")
        if head != section:
            section = head
            lines += ["", f"[{section}]"]
        comment = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}",
                         source)
        lines.append(f"{name} = {toml_value_of(_fields()[dotted], value)}  # {comment}")
    return "\n".join(lines) + "\n"


def effective(settings: Settings) -> list[tuple[str, Any, str]]:
    """(key, value, source) for every key; source is 'default' unless something set it."""
    return [(k, value_of(settings, k), settings.origins.get(k, "default")) for k, _ in all_keys()]


def env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.upper().replace(".", "__")


def from_environ(config_flag: str | None = None, flags: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None, *, strict_env: bool = False,
                 check_cookies: bool = False) -> Settings:
    """What the CLI uses: locate the file and read the real environment."""
    env = os.environ if environ is None else environ
    return load(config_path(config_flag, env), env, flags, strict_env=strict_env,
                check_cookies=check_cookies)


def render_example() -> str:
    """config/ytpiped.example.toml: every key with its default and help (make config-example)."""
    lines = ["# ytpiped configuration: every key, with its default.",
             "# Precedence: defaults < this file < env YTPIPED_<SECTION>__<KEY> < flags.",
             "# File lookup: --config, else $YTPIPED_CONFIG, else the first that exists of",
             "# $XDG_CONFIG_HOME/ytpiped/ytpiped.toml (~/.config/ytpiped/ytpiped.toml) and",
             "# /etc/ytpiped/ytpiped.toml.",
             "# Generated from ytpiped/config.py by `make config-example`.", ""]
    section = ""
    for dotted, f in all_keys():
        head, _, name = dotted.rpartition(".")
        if head != section:
            section = head
            lines += ["", f"[{section}]"]
        value = getattr(Settings(), dotted) if not head else getattr(
            getattr(Settings(), head), name)
        lines.append(f"# {f.metadata['help']} ({_expected(f)}; env {env_name(dotted)})")
        lines.append(f"{name} = {toml_value_of(f, value)}")
    return "\n".join(lines) + "\n"
