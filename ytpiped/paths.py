"""Every path under the data directory (DESIGN.md §4), built in one place.

    DATA/ytpiped.db                 SQLite (WAL)
    DATA/audio/<id>.<ext>           buffered audio
    DATA/transcripts/<id>.<ext>     json, txt, srt, vtt
    DATA/mining/<id>.mined.json     claims before evaluation
    DATA/mining/<id>.json           claims + evaluation
    DATA/meta/<id>.json             the video's metadata (title, channel, chapters, …)
    DATA/ytpiped.sock               control API
    DATA/ytpiped.lock               held by the running daemon
    DATA/.private/                  cookie copies (owner-only)

The database stores paths relative to the data directory (`relative`), so a data
directory moved to a bigger disk keeps working; `resolve` turns them back into paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DB = "ytpiped.db"
SOCKET = "ytpiped.sock"
LOCK = "ytpiped.lock"
AUDIO = "audio"
TRANSCRIPTS = "transcripts"
MINING = "mining"
META = "meta"
PRIVATE = ".private"
OUTPUT_DIRS = (TRANSCRIPTS, MINING, META)


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / DB

    @property
    def socket(self) -> Path:
        return self.root / SOCKET

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def audio_dir(self) -> Path:
        return self.root / AUDIO

    @property
    def transcripts_dir(self) -> Path:
        return self.root / TRANSCRIPTS

    @property
    def mining_dir(self) -> Path:
        return self.root / MINING

    @property
    def private_dir(self) -> Path:
        return self.root / PRIVATE

    def transcript(self, video_id: str, ext: str = "json") -> Path:
        return self.transcripts_dir / f"{video_id}.{ext}"

    def meta(self, video_id: str) -> Path:
        """The metadata one extraction gave (download stage)."""
        return self.root / META / f"{video_id}.json"

    def mined(self, video_id: str) -> Path:
        """Claims as mined, before evaluation."""
        return self.mining_dir / f"{video_id}.mined.json"

    def mining(self, video_id: str) -> Path:
        """Claims with their evaluation: the result of a video."""
        return self.mining_dir / f"{video_id}.json"

    def relative(self, path: str | Path) -> str:
        """What the database stores: `path` relative to the data dir when it lies inside
        it (as given otherwise)."""
        p = Path(path)
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def resolve(self, stored: str | None) -> Path | None:
        """A path as the database stores it, made absolute against the data dir."""
        if not stored:
            return None
        p = Path(stored)
        return p if p.is_absolute() else self.root / p
