"""Where `ytpiped retranscribe` sends each done video back, and the blocking face of the
store method the CLI calls (SQLite's own is in tests/e2e/test_retranscribe_cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ytpiped.retranscribe import plan, wanted_model
from ytpiped.states import STAGES
from ytpiped.store import NewVideo, VideoRow
from ytpiped.store.blocking import BlockingStore
from ytpiped.testing.memory_store import MemoryStore


def row(vid: str, audio: str | None, info: dict[str, Any], state: str = "done") -> VideoRow:
    return VideoRow(id=vid, url="u", kind="video", parent_id=None, title=None, channel=None,
                    upload_date=None, duration_s=9.0, size_bytes=None, audio_path=audio,
                    state=state, attempts=0, next_attempt_at=0.0, lease_owner=None,
                    lease_until=None, failed_stage=None, error_kind=None, error=None,
                    created_at=0.0, updated_at=0.0, info=info)


def test_plan_reenters_at_analysis_only_with_the_audio_on_disk(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "kept0000001.m4a").write_bytes(b"x")
    (tmp_path / "audio" / "subtitled01.m4a").write_bytes(b"x")
    whisper = {"transcript": {"source": "whisper"}}
    rows = [row("kept0000001", "audio/kept0000001.m4a", whisper),
            row("deleted0001", "audio/deleted0001.m4a", whisper),
            row("subtitled01", "audio/subtitled01.m4a",
                {"transcript": {"source": "youtube_subtitles"}}),
            row("playlist001", None, {"expanded": 3}),  # done without a transcript
            row("mining00001", "audio/kept0000001.m4a", whisper, state="mining")]
    got = [(p.video_id, p.target, p.download, p.source) for p in plan(rows, tmp_path)]
    assert got == [("kept0000001", "analyzed", False, "whisper"),
                   ("deleted0001", "queued", True, "whisper"),
                   ("subtitled01", "queued", True, "youtube_subtitles")]


def test_wanted_model_reads_the_persisted_choice() -> None:
    assert wanted_model({"retranscribe": {"model": "large-v3", "at": 1.0}}) == "large-v3"
    assert wanted_model({"retranscribe": {"at": 1.0}}) is None
    assert wanted_model({}) is None


def test_blocking_store_retranscribe() -> None:
    s = BlockingStore.opened(MemoryStore())
    try:
        s.add_videos([NewVideo("vid00000001", "u", "video")], now=1.0)
        for stage, st in STAGES.items():
            s.call(s.store.claim(stage, "w", now=1, lease_s=60))
            s.call(s.store.complete("vid00000001", "w", st.running, st.finished, now=2))
        assert s.retranscribe({"vid00000001": "queued"}, 3.0, model="base") == 1
        got = s.get("vid00000001")
        assert got is not None and got.state == "queued"
        assert wanted_model(got.info) == "base"
    finally:
        s.close()
