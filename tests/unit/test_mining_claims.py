from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ytpiped.mining.claims import dedup_claims, merge_windows, place_claims
from ytpiped.mining.schema import (
    MAX_CLAIMS,
    MAX_CONCEPTS,
    MAX_PEOPLE,
    MAX_RANKED,
    Clamp,
    Evaluation,
    Ranking,
    WindowResult,
)
from ytpiped.mining.windows import Segment, make_windows
from ytpiped.stages.evaluate import apply_evaluation, parts
from ytpiped.testing import fake_answers


def claim(text: str, window: int, conf: float = 0.5, evidence: str | None = None,
          start: float = 0.0) -> dict[str, object]:
    return {"text": text, "type": "factual", "evidence": evidence or text, "confidence": conf,
            "window": window, "start": start, "end": start + 1}


def test_dedup_merges_the_same_claim_from_overlapping_windows() -> None:
    a = claim("Warmer water holds less oxygen.", 0, 0.6, start=20.0)
    b = claim("Warmer water holds less oxygen", 1, 0.9, start=20.0)
    c = claim("Coral reefs are dying.", 1, start=25.0)
    d = claim("Solar panels convert sunlight.", 0, start=5.0)
    out = dedup_claims([a, b, c, d])
    assert [x["text"] for x in out] == ["Solar panels convert sunlight.",
                                        "Warmer water holds less oxygen", "Coral reefs are dying."]
    assert out[1]["windows"] == [0, 1] and out[1]["confidence"] == 0.9


def test_dedup_uses_evidence_containment_and_keeps_distinct_claims() -> None:
    a = claim("Oceans absorb CO2.", 0, evidence="The ocean absorbs a quarter of the carbon")
    b = claim("A quarter of emissions go to the ocean.", 1,
              evidence="absorbs a quarter of the carbon")
    c = claim("Oceans absorb heat.", 1, evidence="the ocean absorbs heat too")
    out = dedup_claims([a, b, c])
    assert len(out) == 2


def test_place_claims_finds_timestamps_from_evidence() -> None:
    segs = [Segment(0.0, 5.0, "Solar panels convert sunlight into electricity."),
            Segment(5.0, 9.0, "The price fell by ninety percent.")]
    w = make_windows(segs, 1000, 0)[0]
    res = WindowResult.model_validate(json.loads(fake_answers.answer(
        {"title": "WindowResult"}, f"<transcript>\n{w.text}\n</transcript>")))
    placed = place_claims(res, w)
    assert [(c["start"], c["end"], c["quote_found"]) for c in placed["claims"]] == [
        (0.0, 5.0, "exact"), (5.0, 9.0, "exact")]
    bad = WindowResult.model_validate({"claims": [{"text": "Made up", "type": "other",
                                                   "evidence": "never said anything like it",
                                                   "confidence": 0.1}],
                                       "people": [], "concepts": []})
    assert place_claims(bad, w)["claims"][0]["start"] is None


def test_merge_windows_keeps_failed_windows_and_dedups() -> None:
    parts: dict[int, dict[str, Any]] = {
        0: {"status": "ok", "claims": [claim("Sleep stores memories.", 0)],
            "people": [{"name": "Ann Lee", "role": ""}], "concepts": []},
        1: {"status": "failed", "error": "not JSON", "raw": "oops"},
        2: {"status": "ok", "claims": [claim("Sleep stores memories.", 2)],
            "people": [{"name": "ann lee", "role": "x"}], "concepts": []},
    }
    merged = merge_windows(parts)
    assert len(merged["claims"]) == 1 and merged["claims"][0]["windows"] == [0, 2]
    assert merged["failed_windows"] == [{"window": 1, "error": "not JSON", "raw": "oops"}]
    assert len(merged["people"]) == 1


def test_apply_evaluation_ranks_marks_duplicates_ignores_bad_ids() -> None:
    claims = [claim(f"claim {i} text here", 0) for i in range(3)]
    ev = Evaluation.model_validate({"summary": "s", "ranked": [
        {"id": 2, "importance": 9, "duplicate_of": None},
        {"id": 0, "importance": 5, "duplicate_of": 2},
        {"id": 7, "importance": 10, "duplicate_of": None},
        {"id": 2, "importance": 1, "duplicate_of": None}]})
    out = apply_evaluation(claims, ev.ranked)
    assert [(c["text"], c["rank"], c["importance"], c["duplicate_of"]) for c in out] == [
        ("claim 2 text here", 1, 9, None), ("claim 0 text here", None, 5, 2),
        ("claim 1 text here", None, None, None)]


def test_claims_are_ranked_in_parts_of_at_most_max_ranked() -> None:
    assert parts(0) == [(0, 0)] and parts(3) == [(0, 3)]
    assert parts(MAX_RANKED) == [(0, MAX_RANKED)]
    assert parts(MAX_RANKED + 1, MAX_RANKED) == [(0, 13), (13, 26)]
    got = parts(130, 25)
    assert [b - a for a, b in got] == [22, 22, 22, 22, 21, 21]  # as few, nearly equal
    assert [a for a, _ in got[1:]] == [b for _, b in got[:-1]] and got[-1][1] == 130


def test_parts_are_ranked_together_by_importance() -> None:
    """A later part's more important claim ranks above the first part's; equal
    importance keeps the order the answers gave (the first part first)."""
    claims = [claim(f"claim {i} text here", float(i)) for i in range(4)]
    first = Ranking.model_validate({"ranked": [
        {"id": 0, "importance": 5, "duplicate_of": None},
        {"id": 1, "importance": 7, "duplicate_of": None}]})
    second = Ranking.model_validate({"ranked": [
        {"id": 2, "importance": 9, "duplicate_of": None},
        {"id": 3, "importance": 5, "duplicate_of": None}]})
    out = apply_evaluation(claims, [*first.ranked, *second.ranked])
    assert [(c["text"][:7], c["rank"]) for c in out] == [
        ("claim 2", 1), ("claim 1", 2), ("claim 0", 3), ("claim 3", 4)]


def test_fake_evaluation_answer_marks_repeats() -> None:
    out = fake_answers.evaluation_answer("[0] (factual) Sleep stores memories.\n"
                                         "[1] (causal) Coffee blocks adenosine because x.\n"
                                         "[2] (factual) sleep stores memories")
    by_id = {r["id"]: r for r in out["ranked"]}
    assert by_id[2]["duplicate_of"] == 0 and by_id[0]["duplicate_of"] is None
    assert Evaluation.model_validate(out)


def test_fake_window_answer_without_punctuation() -> None:
    text = " ".join(f"w{i}" for i in range(30))
    out = fake_answers.window_answer(text)
    assert out["claims"][0]["evidence"] == " ".join(f"w{i}" for i in range(12))
    assert WindowResult.model_validate(out)


def test_a_confidence_out_of_bounds_is_clamped_not_a_failed_window() -> None:
    # llama.cpp's grammar enforces the schema but not number bounds: a small model answers 5
    def answer(confidence: object) -> dict[str, object]:
        return {"claims": [{"text": "Solar got cheap", "type": "factual",
                            "evidence": "solar power fell", "confidence": confidence}],
                "people": [], "concepts": []}

    assert WindowResult.model_validate(answer(5)).claims[0].confidence == 1.0
    assert WindowResult.model_validate(answer(-0.5)).claims[0].confidence == 0.0
    assert WindowResult.model_validate(answer(0.75)).claims[0].confidence == 0.75
    with pytest.raises(ValidationError):
        WindowResult.model_validate(answer("very"))


def test_fake_window_answer_keeps_within_the_schema_s_list_bounds() -> None:
    names = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Emmy Noether", "Marie Curie",
             "Carl Gauss", "Niels Bohr")
    words = ("thermodynamics", "photosynthesis", "electrochemistry", "biodiversity",
             "infrastructure", "microprocessor", "superconductor")
    text = " ".join(f"then we heard {n} explain {w} to students."
                    for n, w in zip(names, words, strict=True))
    out = fake_answers.window_answer(text)
    assert [len(out[k]) for k in ("claims", "people", "concepts")] == \
        [MAX_CLAIMS, MAX_PEOPLE, MAX_CONCEPTS]
    clamps: list[Clamp] = []
    WindowResult.model_validate(out, context={"clamped": clamps})
    assert clamps == []


def test_fake_evaluation_answer_ranks_at_most_the_schema_s_bound() -> None:
    block = "\n".join(f"[{i}] (factual) Claim {' '.join(['word'] * (i % 19))} number {i}."
                      for i in range(MAX_RANKED + 10))
    out = fake_answers.evaluation_answer(block)
    assert len(out["ranked"]) == MAX_RANKED
    assert min(r["importance"] for r in out["ranked"]) >= max(
        1 + min(9, (len(f"Claim number {i}.".split()) + i % 19) // 2)
        for i in range(MAX_RANKED + 10) if i not in {r["id"] for r in out["ranked"]})
    clamps: list[Clamp] = []
    Evaluation.model_validate(out, context={"clamped": clamps})
    assert clamps == []
