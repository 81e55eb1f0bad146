"""Results travel through the store between hosts without shared files: kept under the
run's fencing token, written into another data dir only where it lacks them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ytpiped import outputs
from ytpiped.errors import InvalidTransition
from ytpiped.store import NewVideo
from ytpiped.testing.memory_store import MemoryStore

VID = "outputvid01"


async def test_a_transcript_made_on_one_host_is_written_on_another(tmp_path: Path) -> None:
    store = MemoryStore()
    await store.add_videos([NewVideo(VID, "https://x/v", "video")], now=1)
    (row,) = await store.claim("download", "gpu:1", now=2, lease_s=60)
    made, other = tmp_path / "gpu", tmp_path / "llm"
    doc = {"segments": [{"start": 0.0, "end": 2.5, "text": "Grüße aus dem Studio"}]}
    (made / "transcripts").mkdir(parents=True)
    (made / "transcripts" / f"{VID}.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InvalidTransition):  # a run that lost its lease writes nothing
        await outputs.keep(store, made, VID, "transcribe", now=3, token=row.lease_token + 1)
    assert await outputs.fetch(store, other, VID, ("transcript",)) == []
    assert await outputs.keep(store, made, VID, "transcribe", now=3,
                              token=row.lease_token) == ["transcript"]
    assert await outputs.keep(store, made, VID, "mine", now=3, token=row.lease_token) == []
    assert await outputs.fetch(store, other, VID, ("transcript", "mined")) == ["transcript"]
    fetched = other / "transcripts" / f"{VID}.json"
    assert json.loads(fetched.read_text(encoding="utf-8")) == doc
    fetched.write_text("{}", encoding="utf-8")  # a file that is there is this host's own
    assert await outputs.fetch(store, other, VID, ("transcript",)) == []
    assert fetched.read_text(encoding="utf-8") == "{}"
