"""`ytpiped export`: mined claims and evaluations out of DATA/mining/<id>.json.

jsonl: OUT/claims.jsonl, one line per claim (video id, title, channel, claim fields,
importance, rank, timestamps) and OUT/evaluations.jsonl, one line per video (summary,
evaluation status, provenance, the tokens the LLM servers counted: in all, for the summary,
per window and for the evaluation). md: OUT/<id>.md per video, claims in rank order with
timestamps and evidence, its token totals in the footer. Returns the number of claims
written. Files are written to a temp name and renamed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from ytpiped.paths import DataDir

Format = Literal["jsonl", "md"]


def read_output(path: Path) -> dict[str, Any] | None:
    """One video's output (a JSON object), or None when missing or unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def mined_files(data_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every finished (evaluated) video output, sorted by id; unreadable files skipped."""
    for path in sorted(DataDir(data_dir).mining_dir.glob("*.json")):
        if path.name.endswith(".mined.json") or path.name.startswith("."):
            continue
        doc = read_output(path)
        if doc is not None:
            yield path, doc


def _stamp(t: Any) -> str:
    if not isinstance(t, int | float):
        return "--:--"
    s = int(t)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def _replace(tmp: Path, dst: Path) -> None:
    os.replace(tmp, dst)


def video_markdown(doc: dict[str, Any]) -> str:
    ev = doc.get("evaluation") or {}
    lines = [f"# {doc.get('title') or doc.get('video_id')}", ""]
    if doc.get("channel"):
        lines += [f"Channel: {doc['channel']}", ""]
    summary = ev.get("summary") or doc.get("summary")
    if summary:
        lines += ["## Summary", "", str(summary), ""]
    lines += ["## Claims", ""]
    for c in doc.get("claims", []):
        if c.get("duplicate_of") is not None:
            continue
        imp = f" [{c['importance']}/10]" if c.get("importance") is not None else ""
        lines.append(f"- **{_stamp(c.get('start'))}**{imp} ({c.get('type', 'other')}) "
                     f"{c.get('text', '')}")
        if c.get("evidence"):
            lines.append(f"  > {c['evidence']}")
    for key, title, name in (("people", "People", "name"), ("concepts", "Concepts", "term")):
        items = doc.get(key) or []
        if items:
            lines += ["", f"## {title}", ""]
            other = "role" if key == "people" else "explanation"
            lines += [f"- {i.get(name)}" + (f": {i[other]}" if i.get(other) else "")
                      for i in items]
    prov = doc.get("provenance") or {}
    tokens = doc.get("tokens") or {}
    spent = (f", tokens {tokens['prompt']} prompt + {tokens['completion']} completion"
             if isinstance(tokens, dict) and "prompt" in tokens and "completion" in tokens
             else "")
    lines += ["", f"_model {prov.get('model')}, evaluation {prov.get('eval_model')}, "
                  f"prompts {prov.get('prompt_version')} / {prov.get('eval_prompt_version')}"
                  f"{spent}_", ""]
    return "\n".join(lines)


def export(data_dir: Path, out_dir: Path, fmt: Format = "jsonl") -> int:
    """Write every evaluated video's claims to out_dir; returns the number of claims."""
    if fmt not in ("jsonl", "md"):
        raise ValueError(f"format must be jsonl or md, not {fmt!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    if fmt == "md":
        for path, doc in mined_files(data_dir):
            vid = str(doc.get("video_id") or path.stem)
            tmp = out_dir / f".{vid}.md.tmp"
            tmp.write_text(video_markdown(doc), encoding="utf-8")
            _replace(tmp, out_dir / f"{vid}.md")
            count += sum(1 for c in doc.get("claims", []) if c.get("duplicate_of") is None)
        return count
    claims_tmp, evals_tmp = out_dir / ".claims.jsonl.tmp", out_dir / ".evaluations.jsonl.tmp"
    with claims_tmp.open("w", encoding="utf-8") as cf, \
            evals_tmp.open("w", encoding="utf-8") as ef:
        for path, doc in mined_files(data_dir):
            vid = str(doc.get("video_id") or path.stem)
            head = {"video_id": vid, "title": doc.get("title"), "channel": doc.get("channel")}
            prov = doc.get("provenance") or {}
            for c in doc.get("claims", []):
                cf.write(json.dumps({**head, **c, "model": prov.get("model"),
                                     "prompt_version": prov.get("prompt_version"),
                                     "eval_model": prov.get("eval_model"),
                                     "eval_prompt_version": prov.get("eval_prompt_version")},
                                    ensure_ascii=False) + "\n")
                count += 1
            ef.write(json.dumps({**head, "evaluation": doc.get("evaluation"),
                                 "summary": doc.get("summary"), "people": doc.get("people"),
                                 "concepts": doc.get("concepts"), "provenance": prov,
                                 "tokens": doc.get("tokens")},
                                ensure_ascii=False) + "\n")
    _replace(claims_tmp, out_dir / "claims.jsonl")
    _replace(evals_tmp, out_dir / "evaluations.jsonl")
    return count
