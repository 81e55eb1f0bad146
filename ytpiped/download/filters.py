"""Which videos to leave alone: duration bounds, upload date, live streams, shorts and
title patterns (the `sources` section, overridden per followed source). Pure.

`Filters.reason(info)` is handed to yt-dlp as its `match_filter`, so it runs on the
extraction's result before any audio is downloaded; a reason means the video ends
`skipped` with it, not failed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: keys a followed source may override (`ytpiped add --follow URL --filter KEY=VALUE`)
KEYS = ("min_duration_s", "max_duration_s", "after", "skip_live", "skip_shorts",
        "title_include", "title_exclude")


def date(value: str) -> str:
    """"2024-05-01" or "20240501" -> "20240501" (yt-dlp's upload_date form); "" stays."""
    text = value.strip().replace("-", "")
    if text and not re.fullmatch(r"\d{8}", text):
        raise ValueError("a date like \"2024-05-01\" (or \"\" for none)")
    return text


def regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"a regular expression ({exc})") from None
    return value


@dataclass(frozen=True)
class Filters:
    min_duration_s: float = 0.0  # 0: no bound
    max_duration_s: float = 0.0
    after: str = ""  # YYYYMMDD: uploaded on or after
    skip_live: bool = False
    skip_shorts: bool = False
    title_include: str = ""
    title_exclude: str = ""

    @classmethod
    def of(cls, cfg: Any, overrides: Mapping[str, Any] | None = None) -> Filters:
        """From the config section (any object with these attributes) and a followed
        source's own values."""
        base = {k: getattr(cfg, k) for k in KEYS}
        return cls(**{**base, **parse(overrides or {})})

    @property
    def active(self) -> bool:
        return self != Filters()

    def reason(self, info: Mapping[str, Any], *, incomplete: bool = False) -> str | None:
        """Why `info` is skipped, or None. With `incomplete` (a flat listing's entry), a
        missing field lets the entry through: the full extraction decides."""
        title = str(info.get("title") or "")
        duration = info.get("duration")
        live = info.get("live_status")
        if self.skip_live and (live in ("is_live", "post_live") or info.get("is_live")):
            return "live stream (sources.skip_live)"
        if self.skip_shorts and (info.get("media_type") == "short"
                                 or "/shorts/" in str(info.get("original_url") or "")):
            return "YouTube short (sources.skip_shorts)"
        if isinstance(duration, int | float):
            if self.min_duration_s and duration < self.min_duration_s:
                return (f"shorter than {self.min_duration_s:g} s ({duration:g} s; "
                        "sources.min_duration_s)")
            if self.max_duration_s and duration > self.max_duration_s:
                return (f"longer than {self.max_duration_s:g} s ({duration:g} s; "
                        "sources.max_duration_s)")
        uploaded = info.get("upload_date")
        if self.after and uploaded and str(uploaded) < self.after:
            return f"uploaded {uploaded}, before {self.after} (sources.after)"
        if title or not incomplete:
            if self.title_include and not re.search(self.title_include, title, re.I):
                return f"title {title!r} does not match {self.title_include!r} " \
                       "(sources.title_include)"
            if self.title_exclude and re.search(self.title_exclude, title, re.I):
                return f"title {title!r} matches {self.title_exclude!r} (sources.title_exclude)"
        return None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse(values: Mapping[str, Any]) -> dict[str, Any]:
    """A followed source's filter values (from `--filter KEY=VALUE` or stored JSON) -> typed;
    ValueError names the key and what it takes."""
    out: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in KEYS:
            raise ValueError(f"unknown filter {key!r} (filters: {', '.join(KEYS)})")
        try:
            if key in ("min_duration_s", "max_duration_s"):
                value: Any = float(raw)
                if value < 0:
                    raise ValueError
            elif key in ("skip_live", "skip_shorts"):
                if isinstance(raw, bool):
                    value = raw
                elif str(raw).lower() in ("true", "1", "yes", "false", "0", "no"):
                    value = str(raw).lower() in ("true", "1", "yes")
                else:
                    raise ValueError
            elif key == "after":
                value = date(str(raw))
            else:
                value = regex(str(raw))
        except ValueError as exc:
            what = {"min_duration_s": "seconds >= 0", "max_duration_s": "seconds >= 0",
                    "skip_live": "true or false", "skip_shorts": "true or false"}.get(
                key, str(exc))
            raise ValueError(f"filter {key}: expected {what}, got {raw!r}") from None
        out[key] = value
    return out
