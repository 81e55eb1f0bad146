"""`ytpiped export` carries the metadata the download kept (DATA/meta/<id>.json)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_mining_export import doc
from ytpiped.mining.export import export

META = {"upload_date": "20260101", "channel_id": "UC1", "tags": ["solar"],
        "description": "About the sun.", "language": "en",
        "chapters": [{"start": 0.0, "end": 60.0, "title": "Intro"},
                     {"start": 60.0, "end": 200.0, "title": "Prices"}]}


def test_export_adds_metadata_and_claim_chapters(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "mining").mkdir(parents=True)
    (data / "meta").mkdir()
    (data / "mining" / "aaaaaaaaaaa.json").write_text(json.dumps(doc("aaaaaaaaaaa", 2)))
    (data / "meta" / "aaaaaaaaaaa.json").write_text(json.dumps(META))
    (data / "mining" / "bbbbbbbbbbb.json").write_text(json.dumps(doc("bbbbbbbbbbb", 1)))
    export(data, tmp_path / "out", "jsonl")
    claims = [json.loads(x) for x in (tmp_path / "out" / "claims.jsonl").read_text()
              .splitlines()]
    assert [(c["video_id"], c["chapter"], c["upload_date"]) for c in claims] == [
        ("aaaaaaaaaaa", "Intro", "2026-01-01"), ("aaaaaaaaaaa", "Prices", "2026-01-01"),
        ("bbbbbbbbbbb", None, None)]  # claims at 0 s and 65 s; no metadata for bbbbbbbbbbb
    evals = [json.loads(x) for x in (tmp_path / "out" / "evaluations.jsonl").read_text()
             .splitlines()]
    assert evals[0]["meta"]["tags"] == ["solar"] and evals[0]["meta"]["description"]
    export(data, tmp_path / "md", "md")
    notes = [p.read_text() for p in (tmp_path / "md").rglob("*.md")]
    (note,) = [n for n in notes if 'video_id: "aaaaaaaaaaa"' in n]  # the vault's note
    assert 'date: "2026-01-01"' in note and '"tag/solar"' in note
