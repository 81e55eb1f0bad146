from __future__ import annotations

from pathlib import Path

from ytpiped import status
from ytpiped.status import clip
from ytpiped.store import NewVideo, Store


def test_clip_keeps_one_line_and_marks_the_cut() -> None:
    assert clip("short\nerror", 20) == "short error"
    cut = clip("x" * 30 + " tail", 20)
    assert len(cut) == 20 and cut.endswith("…") and "tail" not in cut


def test_failed_videos_show_one_clipped_line_each() -> None:
    store = Store(Path(":memory:"), now=0)
    try:
        store.add_videos([NewVideo("aaaaaaaaaaa", "https://youtu.be/aaaaaaaaaaa", "video")],
                         now=0)
        (row,) = store.claim("download", "w", now=1, lease_s=10, limit=1)
        store.fail(row.id, "w", "downloading", now=2, kind="forbidden",
                   error="HTTP Error 403: Forbidden\n" + "detail " * 40)
        text = status.format_status(status.build(store, 3, None))
    finally:
        store.close()
    (line,) = [x for x in text.splitlines() if "[download/forbidden]" in x]
    assert line.startswith("  aaaaaaaaaaa [download/forbidden] HTTP Error 403: Forbidden detail")
    assert line.endswith("…") and len(line.split("] ", 1)[1]) == 100
