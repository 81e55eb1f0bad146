"""What a new prompt version or model made stale, for `ytpiped remine`.

A done video's DATA/mining/<id>.json records the models and prompt versions it was made
with. A changed window prompt or mining model makes every window stale; a changed evaluation
prompt or model only the evaluation. Sending the video back to `transcribed` redoes exactly
that: the mine stage keeps every window part still current (same plan, model and prompt
version) and mines only the others, and the evaluate stage runs again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytpiped.config import MineConfig
from ytpiped.mining import export, prompts
from ytpiped.paths import DataDir


def read_output(data_dir: Path, video_id: str) -> dict[str, Any] | None:
    """DATA/mining/<id>.json, or None when missing or unreadable."""
    return export.read_output(DataDir(data_dir).mining(video_id))


@dataclass(frozen=True)
class Stale:
    reason: str  # e.g. "mining prompt 1a2b3c4d5e6f -> 0f9e8d7c6b5a"
    windows: bool  # windows must be mined again (else only the evaluation)


def staleness(doc: Mapping[str, Any] | None, cfg: MineConfig) -> Stale | None:
    """Why this output no longer matches the current prompts and models; None if it does."""
    if doc is None:
        return Stale("no mining output", windows=True)
    prov = doc.get("provenance") or {}
    checks = (("prompt_version", prompts.MINE_PROMPT_VERSION, "mining prompt", True),
              ("model", cfg.model, "model", True),
              ("eval_prompt_version", prompts.EVAL_PROMPT_VERSION, "evaluation prompt", False),
              ("eval_model", cfg.eval_model or cfg.model, "evaluation model", False))
    changed = [(f"{what} {prov.get(key) or '?'} -> {now}", windows)
               for key, now, what, windows in checks if prov.get(key) != now]
    if not changed:
        return None
    return Stale("; ".join(c for c, _ in changed), windows=any(w for _, w in changed))
