from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from ytpiped.errors import UsageError
from ytpiped.mining.export import export
from ytpiped.store import VideoRow


def doc(vid: str, n: int) -> dict[str, object]:
    return {"video_id": vid, "title": f"Title {vid}", "channel": "Chan",
            "summary": "short", "people": [{"name": "Ann Lee", "role": "host"}],
            "concepts": [{"term": "adenosine", "explanation": "a molecule"}],
            "claims": [{"text": f"claim {i} of {vid}", "type": "factual",
                        "evidence": f"said {i}", "confidence": 0.5, "start": 65.0 * i,
                        "end": 65.0 * i + 3, "importance": 10 - i, "rank": i + 1,
                        "duplicate_of": None} for i in range(n)],
            "evaluation": {"status": "ok", "summary": f"long summary of {vid}", "ranked": []},
            "provenance": {"model": "m", "eval_model": "e", "prompt_version": "abc123",
                           "eval_prompt_version": "def456"},
            "tokens": {"prompt": 900 * n, "completion": 100 * n,
                       "summary": {"prompt": 300, "completion": 40},
                       "windows": {str(i): {"prompt": 500, "completion": 50} for i in range(n)},
                       "evaluate": {"prompt": 100, "completion": 10}}}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "mining").mkdir(parents=True)
    for vid, n in (("aaaaaaaaaaa", 2), ("bbbbbbbbbbb", 3)):
        (d / "mining" / f"{vid}.json").write_text(json.dumps(doc(vid, n)))
    (d / "mining" / "ccccccccccc.mined.json").write_text(json.dumps(doc("ccccccccccc", 9)))
    (d / "mining" / "broken.json").write_text("{not json")
    return d


def row(vid: str, **kw: object) -> VideoRow:
    base: dict[str, object] = dict(
        id=vid, url=f"https://www.youtube.com/watch?v={vid}", kind="video", state="done",
        attempts=0, next_attempt_at=0.0, lease_owner=None, lease_until=None, parent_id=None,
        title=f"Title {vid}", channel="Chan", upload_date="20240301", duration_s=3600.0,
        size_bytes=None, audio_path=None, failed_stage=None, error_kind=None, error=None,
        info={}, created_at=0.0, updated_at=0.0)
    base.update(kw)
    return VideoRow(**{k: v for k, v in base.items()
                       if k in VideoRow.__dataclass_fields__})  # type: ignore[arg-type]


ROWS = {"aaaaaaaaaaa": row("aaaaaaaaaaa"),
        "bbbbbbbbbbb": row("bbbbbbbbbbb", url="https://example.org/b.mp3", kind="generic",
                           channel="Other", upload_date="20230101",
                           title='Bee: "A/B" <test>?')}


def test_jsonl_claims_carry_video_url_deep_link_and_dates(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = export(data, out, "jsonl", rows=ROWS)
    assert (report.claims, report.videos) == (5, 2)
    lines = [json.loads(x) for x in (out / "claims.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == ["claim 0 of aaaaaaaaaaa", "claim 1 of aaaaaaaaaaa",
                                          "claim 0 of bbbbbbbbbbb", "claim 1 of bbbbbbbbbbb",
                                          "claim 2 of bbbbbbbbbbb"]
    a1 = lines[1]
    assert (a1["video_id"], a1["url"], a1["link"], a1["time"], a1["upload_date"]) == \
        ("aaaaaaaaaaa", "https://www.youtube.com/watch?v=aaaaaaaaaaa",
         "https://www.youtube.com/watch?v=aaaaaaaaaaa&t=65s", "01:05", "2024-03-01")
    assert (a1["prompt_version"], a1["eval_model"], a1["eval_prompt_version"]) == \
        ("abc123", "e", "def456")
    b1 = lines[3]
    assert (b1["channel"], b1["link"], b1["title"]) == \
        ("Other", "https://example.org/b.mp3", 'Bee: "A/B" <test>?')
    evals = [json.loads(x) for x in (out / "evaluations.jsonl").read_text().splitlines()]
    assert [e["url"] for e in evals] == [ROWS["aaaaaaaaaaa"].url, ROWS["bbbbbbbbbbb"].url]
    assert not list(out.glob(".*.tmp"))


def test_without_the_database_claims_still_export(data: Path, tmp_path: Path) -> None:
    report = export(data, tmp_path / "o", "jsonl")
    first = json.loads((tmp_path / "o" / "claims.jsonl").read_text().splitlines()[0])
    assert report.claims == 5 and (first["url"], first["link"], first["channel"]) == \
        (None, None, "Chan")


def test_csv_for_spreadsheets(data: Path, tmp_path: Path) -> None:
    export(data, tmp_path / "c", "csv", rows=ROWS)
    raw = (tmp_path / "c" / "claims.csv").read_text(encoding="utf-8")
    assert raw.startswith("\ufeffvideo_id,title,channel,upload_date,url,link,time,")
    got = list(csv.DictReader(raw.lstrip("\ufeff").splitlines()))
    assert len(got) == 5 and got[4]["title"] == 'Bee: "A/B" <test>?'
    assert (got[1]["link"], got[1]["importance"], got[1]["rank"]) == \
        ("https://www.youtube.com/watch?v=aaaaaaaaaaa&t=65s", "9", "2")


def test_since_and_channel_pick_videos(data: Path, tmp_path: Path) -> None:
    assert export(data, tmp_path / "s", "jsonl", rows=ROWS, since="20240101").claims == 2
    assert export(data, tmp_path / "c", "jsonl", rows=ROWS, channel="OTHER").claims == 3
    assert export(data, tmp_path / "n", "jsonl", rows=ROWS, since="20250101").claims == 0


def test_incremental_writes_only_what_changed(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "inc"
    t0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    first = export(data, out, "jsonl", rows=ROWS, incremental=True, now=t0)
    assert (first.videos, first.unchanged, first.claims) == (2, 0, 5)
    assert first.files == ["claims-20240501T120000Z.jsonl",
                           "evaluations-20240501T120000Z.jsonl"]
    again = export(data, out, "jsonl", rows=ROWS, incremental=True,
                   now=t0 + dt.timedelta(hours=1))
    assert (again.videos, again.unchanged, again.files) == (0, 2, [])
    path = data / "mining" / "bbbbbbbbbbb.json"
    changed = json.loads(path.read_text())
    changed["claims"].append({"text": "late claim", "start": 1.0})
    path.write_text(json.dumps(changed))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    third = export(data, out, "jsonl", rows=ROWS, incremental=True,
                   now=t0 + dt.timedelta(hours=2))
    assert (third.videos, third.unchanged, third.claims) == (1, 1, 4)
    text = (out / "claims-20240501T140000Z.jsonl").read_text()
    assert "late claim" in text and "aaaaaaaaaaa" not in text


def test_markdown_vault_front_matter_links_and_file_names(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "vault"
    report = export(data, out, "md", rows=ROWS)
    assert report.claims == 5
    notes = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.md")}
    assert set(notes) == {"index.md", "videos/title-aaaaaaaaaaa.md", "videos/bee-a-b-test.md",
                          "concepts/adenosine.md", "people/ann-lee.md"}
    for name in notes:  # safe on Linux, macOS and Windows
        assert re.fullmatch(r"[a-z0-9/.-]+", name) and len(Path(name).name) <= 64
    note = notes["videos/bee-a-b-test.md"]
    front = yaml.safe_load(note.split("---\n")[1])
    assert front == {"title": 'Bee: "A/B" <test>?', "channel": "Other", "date": "2023-01-01",
                     "url": "https://example.org/b.mp3", "video_id": "bbbbbbbbbbb",
                     "tags": ["ytpiped", "video", "channel/other"], "state": "done"}
    assert "long summary of bbbbbbbbbbb" in note
    a = notes["videos/title-aaaaaaaaaaa.md"]
    assert "- [01:05](https://www.youtube.com/watch?v=aaaaaaaaaaa&t=65s) **9/10** (factual) " \
           "claim 1 of aaaaaaaaaaa" in a
    assert "[[concepts/adenosine|adenosine]]" in a and "[[people/ann-lee|Ann Lee]]" in a
    for text in notes.values():  # every [[link]] resolves to a note
        for target in re.findall(r"\[\[([^|\]]+)", text):
            assert f"{target}.md" in notes, target
        yaml.safe_load(text.split("---\n")[1])
    person = notes["people/ann-lee.md"]
    assert "[[videos/title-aaaaaaaaaaa|Title aaaaaaaaaaa]]: host" in person


def test_vault_names_are_unique_and_never_reserved(tmp_path: Path) -> None:
    from ytpiped.vault import Vault, Video, slug

    assert slug("CON") == "con-" and slug("***", "x_y") == "x-y" and slug("Ünïcödé Ø") == \
        "ünïcödé-ø"
    assert len(slug("a" * 200)) == 60
    vault = Vault([Video(v, {"claims": []}, "Same Title") for v in ("v1", "v2", "V3")])
    paths = [p for p in vault.files() if p.startswith("videos/")]
    assert len({p.lower() for p in paths}) == 3


def test_transcripts_per_video_and_merged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "transcripts").mkdir(parents=True)
    segs = [{"start": 0.0, "end": 2.5, "text": "Hello."}, {"start": 2.5, "end": 4.0,
                                                           "text": "World."}]
    for vid in ("aaaaaaaaaaa", "bbbbbbbbbbb"):
        (data / "transcripts" / f"{vid}.json").write_text(
            json.dumps({"video_id": vid, "segments": segs}))
    out = tmp_path / "t"
    report = export(data, out, "transcripts", rows=ROWS, transcript_format="srt")
    assert report.videos == 2
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["bee-a-b-test.srt", "title-aaaaaaaaaaa.srt"]
    assert (out / "bee-a-b-test.srt").read_text().startswith(
        "1\n00:00:00,000 --> 00:00:02,500\nHello.\n")
    export(data, out, "transcripts", rows=ROWS, transcript_format="vtt")
    assert (out / "title-aaaaaaaaaaa.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000")
    export(data, out, "transcripts", rows=ROWS, transcript_format="txt", merged=True)
    merged = (out / "transcripts.txt").read_text()
    assert merged.count("Hello.\nWorld.") == 2 and "https://example.org/b.mp3" in merged
    with pytest.raises(UsageError, match="--merged"):
        export(data, out, "transcripts", transcript_format="srt", merged=True)


def test_bad_format_and_empty_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jsonl, md, csv, transcripts"):
        export(tmp_path, tmp_path / "o", "xml")  # type: ignore[arg-type]
    assert export(tmp_path, tmp_path / "o", "jsonl").claims == 0
    assert (tmp_path / "o" / "claims.jsonl").read_text() == ""


def test_token_counts_travel_with_each_video(data: Path, tmp_path: Path) -> None:
    export(data, tmp_path / "jsonl", "jsonl")
    evals = [json.loads(x) for x in (tmp_path / "jsonl" / "evaluations.jsonl").read_text()
             .splitlines()]
    assert [(e["tokens"]["prompt"], e["tokens"]["completion"]) for e in evals] == \
        [(1800, 200), (2700, 300)]
    assert evals[1]["tokens"]["windows"]["2"] == {"prompt": 500, "completion": 50}
    export(data, tmp_path / "md", "md")
    (text,) = [p.read_text() for p in (tmp_path / "md" / "videos").glob("*.md")
               if 'video_id: "bbbbbbbbbbb"' in p.read_text()]
    assert "tokens 2700 prompt + 300 completion" in text
