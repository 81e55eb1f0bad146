"""What a user may hand through to yt-dlp, checked when the config loads. Pure.

`download.extractor_args` becomes yt-dlp's `extractor_args` ({extractor: {arg: [values]}},
as `--extractor-args` builds it); `download.ytdlp_options` is merged into the YoutubeDL
parameters, except the keys of the deny-list: nothing that runs commands or code,
post-processes, writes files outside the data dir, carries credentials, or takes over a
setting ytpiped manages itself.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit


class Refused(ValueError):
    """A value the config must not accept; the message is shown as it is."""


JS_RUNTIMES = ("deno", "node", "bun", "quickjs")
JS_RUNTIME_CHOICES = ("auto", *JS_RUNTIMES)
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")

_RUNS = "runs commands or code"
_WRITES = "writes files outside the data dir"
_SECRETS = "puts credentials in the config (YouTube takes cookies only: download.cookies_file)"
_MANAGED = "ytpiped sets it itself"

#: YoutubeDL parameter -> why `download.ytdlp_options` may not set it
DENIED: dict[str, str] = {
    **dict.fromkeys(("exec", "exec_cmd", "postprocessors", "postprocessor_args",
                     "postprocessor_hooks", "post_hooks", "progress_hooks", "match_filter",
                     "external_downloader", "external_downloader_args", "ffmpeg_location",
                     "plugin_dirs", "netrc_cmd", "logger", "fixup", "merge_output_format",
                     "final_ext", "remuxvideo", "recodevideo", "embedthumbnail",
                     "embedsubtitles", "sponsorblock_mark", "sponsorblock_remove"), _RUNS),
    **dict.fromkeys(("paths", "outtmpl", "outtmpl_na_placeholder", "download_archive",
                     "force_write_download_archive", "cachedir", "writeinfojson",
                     "writethumbnail", "write_all_thumbnails", "writesubtitles",
                     "writeautomaticsub", "writedescription", "writeannotations", "writelink",
                     "writeurllink", "writewebloclink", "writedesktoplink", "print_to_file",
                     "load_info_filename", "keepvideo", "allow_playlist_files",
                     "consoletitle"), _WRITES),
    **dict.fromkeys(("username", "password", "videopassword", "ap_mso", "ap_username",
                     "ap_password", "usenetrc", "netrc_location", "client_certificate_password",
                     "cookiesfrombrowser"), _SECRETS),
    **dict.fromkeys(("quiet", "no_warnings", "noprogress", "logtostderr", "color", "simulate",
                     "skip_download", "noplaylist", "extract_flat", "overwrites", "continuedl",
                     "forceprint", "forcejson", "dump_single_json", "verbose",
                     "ignoreerrors", "wait_for_video", "live_from_start"), _MANAGED),
}

#: YoutubeDL parameter -> the ytpiped key that sets it
INSTEAD: dict[str, str] = {
    "format": "download.format", "proxy": "download.proxy",
    "source_address": "download.source_address", "extractor_args": "download.extractor_args",
    "sleep_interval_requests": "download.sleep_requests_s",
    "js_runtimes": "download.js_runtime", "cookiefile": "download.cookies_file",
    "socket_timeout": "download.socket_timeout_s",
}

_SPLIT = re.compile(r"(?<!\\),")


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise Refused(f"{where}: expected a string, number or boolean, got {value!r}")


def extractor_args(value: Any) -> dict[str, dict[str, list[str]]]:
    """{extractor: {arg: value or [values]}} -> yt-dlp's form: extractor names in lower
    case, argument names in lower case with "-" as "_", values as lists of strings (a
    string is split at unescaped commas, like `--extractor-args` does)."""
    if not isinstance(value, dict):
        raise Refused("expected a table of extractor names to tables of arguments, e.g. "
                      "{youtube = {player_client = [\"default\", \"mweb\"]}}, "
                      f"got {value!r}")
    out: dict[str, dict[str, list[str]]] = {}
    for ie, args in value.items():
        if not isinstance(args, dict):
            raise Refused(f"'{ie}': expected a table of arguments, e.g. {{player_client = "
                          f"[\"mweb\"]}}, got {args!r}")
        clean: dict[str, list[str]] = {}
        for key, raw in args.items():
            where = f"'{ie}.{key}'"
            if isinstance(raw, list):
                vals = [_text(v, where).strip() for v in raw]
            else:
                vals = [v.replace(r"\,", ",").strip() for v in _SPLIT.split(_text(raw, where))]
            clean[str(key).strip().lower().replace("-", "_")] = vals
        out[str(ie).strip().lower()] = clean
    return out


def ytdlp_options(value: Any) -> dict[str, Any]:
    """Extra YoutubeDL parameters; a key of the deny-list is refused with its reason."""
    if not isinstance(value, dict):
        raise Refused(f"expected a table of YoutubeDL parameters, e.g. {{retries = 5}}, "
                      f"got {value!r}")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise Refused(f"expected strings, numbers, booleans, lists and tables only, got "
                      f"{value!r}") from None
    for key in value:
        if key in INSTEAD:
            raise Refused(f"'{key}' is set by the key '{INSTEAD[key]}'; use that instead")
        if key in DENIED:
            raise Refused(f"'{key}' is not allowed: it {DENIED[key]}")
    return dict(value)


def js_runtime(value: Any) -> str:
    """"auto", a runtime's name, or the path of its executable."""
    if not isinstance(value, str) or not value.strip():
        raise Refused(f"expected one of {', '.join(repr(c) for c in JS_RUNTIME_CHOICES)} or "
                      f"the path of a JavaScript runtime's executable, got {value!r}")
    if value in JS_RUNTIME_CHOICES or "/" in value or value.startswith("~"):
        return value
    raise Refused(f"expected one of {', '.join(repr(c) for c in JS_RUNTIME_CHOICES)} or the "
                  f"path of a JavaScript runtime's executable (with a \"/\"), got {value!r}")


def proxy(value: Any) -> str:
    if value == "":
        return ""
    parts = urlsplit(str(value))
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise Refused(f"expected \"\" (none) or a proxy URL such as "
                      f"\"socks5://127.0.0.1:1080\" (schemes: {', '.join(PROXY_SCHEMES)}), "
                      f"got {value!r}")
    return str(value)


def source_address(value: Any) -> str:
    if value == "":
        return ""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        raise Refused(f"expected \"\" or a local IP address to bind to, such as "
                      f"\"192.0.2.10\" or \"0.0.0.0\" (IPv4 only), got {value!r}") from None
    return str(value)
