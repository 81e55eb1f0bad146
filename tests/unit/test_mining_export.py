from __future__ import annotations

import json
from pathlib import Path

import pytest

from ytpiped.mining.export import export


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


def test_jsonl_one_line_per_claim(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert export(data, out, "jsonl") == 5
    lines = [json.loads(x) for x in (out / "claims.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == ["claim 0 of aaaaaaaaaaa", "claim 1 of aaaaaaaaaaa",
                                          "claim 0 of bbbbbbbbbbb", "claim 1 of bbbbbbbbbbb",
                                          "claim 2 of bbbbbbbbbbb"]
    assert lines[0]["video_id"] == "aaaaaaaaaaa" and lines[0]["prompt_version"] == "abc123"
    assert (lines[0]["eval_model"], lines[0]["eval_prompt_version"]) == ("e", "def456")
    evals = (out / "evaluations.jsonl").read_text().splitlines()
    assert len(evals) == 2 and "long summary of bbbbbbbbbbb" in evals[1]
    assert not list(out.glob(".*"))


def test_markdown_per_video(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "md"
    assert export(data, out, "md") == 5
    text = (out / "bbbbbbbbbbb.md").read_text()
    assert "# Title bbbbbbbbbbb" in text and "long summary of bbbbbbbbbbb" in text
    assert "**01:05** [9/10] (factual) claim 1 of bbbbbbbbbbb" in text
    assert "- Ann Lee: host" in text
    assert sorted(p.name for p in out.iterdir()) == ["aaaaaaaaaaa.md", "bbbbbbbbbbb.md"]


def test_bad_format_and_empty_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jsonl or md"):
        export(tmp_path, tmp_path / "o", "csv")  # type: ignore[arg-type]
    assert export(tmp_path, tmp_path / "o", "jsonl") == 0
    assert (tmp_path / "o" / "claims.jsonl").read_text() == ""


def test_token_counts_travel_with_each_video(data: Path, tmp_path: Path) -> None:
    export(data, tmp_path / "jsonl", "jsonl")
    evals = [json.loads(x) for x in (tmp_path / "jsonl" / "evaluations.jsonl").read_text()
             .splitlines()]
    assert [(e["tokens"]["prompt"], e["tokens"]["completion"]) for e in evals] == \
        [(1800, 200), (2700, 300)]
    assert evals[1]["tokens"]["windows"]["2"] == {"prompt": 500, "completion": 50}
    export(data, tmp_path / "md", "md")
    text = (tmp_path / "md" / "bbbbbbbbbbb.md").read_text()
    assert "tokens 2700 prompt + 300 completion" in text
