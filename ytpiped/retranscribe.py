"""What `ytpiped retranscribe` does to a done video (a model upgrade): where it re-enters
the pipeline and why. Its audio kept on disk: back to `analyzed` (transcribed again from
it); deleted after the first transcript (`download.keep_audio = false`), or never fetched
because the video's own subtitles were its transcript: back to `queued`, downloaded again.
Either way it is transcribed by Whisper, then mined and evaluated as usual."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytpiped.paths import DataDir
from ytpiped.states import State
from ytpiped.store.model import VideoRow

SOURCE_SUBTITLES = "youtube_subtitles"  # a transcript's `source` (the download stage's)


@dataclass(frozen=True)
class Plan:
    video_id: str
    target: str  # "analyzed" (audio kept) or "queued" (downloaded again)
    source: str  # the current transcript's source: "whisper" or "youtube_subtitles"

    @property
    def download(self) -> bool:
        return self.target == State.QUEUED.value


def plan(rows: Iterable[VideoRow], data_dir: Path) -> list[Plan]:
    """One plan per done video row that has a transcript (playlists and channels are done
    without one and are left out); looks at the disk for the kept audio."""
    data = DataDir(data_dir)
    out: list[Plan] = []
    for row in rows:
        transcript = row.info.get("transcript")
        if row.state != State.DONE.value or not isinstance(transcript, dict):
            continue
        source = str(transcript.get("source") or "whisper")
        audio = data.resolve(row.audio_path)
        kept = source != SOURCE_SUBTITLES and audio is not None and audio.is_file()
        out.append(Plan(row.id, (State.ANALYZED if kept else State.QUEUED).value, source))
    return out


def wanted_model(info: Mapping[str, Any]) -> str | None:
    """The model `retranscribe --model` chose for this video (None: the configured one)."""
    mark = info.get("retranscribe")
    model = mark.get("model") if isinstance(mark, dict) else None
    return str(model) if model else None
