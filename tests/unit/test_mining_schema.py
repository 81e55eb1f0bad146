"""What a grammar-constrained server (llama.cpp) lets through and the schema must cope
with: numbers outside their bounds are clamped and every clamp is recorded; the evaluation
summary has a length a grammar can stop at, while longer ones are still accepted."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from ytpiped.mining.schema import (
    SUMMARY_MAX_CHARS,
    Clamp,
    Evaluation,
    WindowResult,
    json_schema,
    parse_reply,
)


def test_importance_and_confidence_outside_their_range_are_clamped_and_recorded() -> None:
    raw = json.dumps({"ranked": [{"id": 0, "importance": 0, "duplicate_of": None},
                                 {"id": 1, "importance": 14, "duplicate_of": 0},
                                 {"id": 2, "importance": 7, "duplicate_of": None}],
                      "summary": "Talk about solar power."})
    clamps: list[Clamp] = []
    ev = parse_reply(Evaluation, raw, clamps)
    assert [r.importance for r in ev.ranked] == [1, 10, 7]
    assert clamps == [Clamp("importance", 0.0, 1.0), Clamp("importance", 14.0, 10.0)]
    window = json.dumps({"claims": [{"text": "Solar is cheap.", "type": "factual",
                                     "evidence": "solar is cheap", "confidence": 5}],
                         "people": [], "concepts": []})
    clamps = []
    assert parse_reply(WindowResult, window, clamps).claims[0].confidence == 1.0
    assert clamps == [Clamp("confidence", 5.0, 1.0)]


def test_values_in_range_record_nothing_and_other_errors_still_fail() -> None:
    clamps: list[Clamp] = []
    ev = parse_reply(Evaluation, json.dumps({"ranked": [{"id": 0, "importance": 1,
                                                         "duplicate_of": None}],
                                             "summary": "ok"}), clamps)
    assert ev.ranked[0].importance == 1 and clamps == []
    with pytest.raises(ValidationError):  # not a number at all: no clamp can help
        parse_reply(Evaluation, json.dumps({"ranked": [{"id": 0, "importance": "high",
                                                        "duplicate_of": None}],
                                            "summary": "ok"}), clamps)
    assert clamps == []


def test_evaluation_summary_has_a_length_a_grammar_stops_at_but_longer_is_kept() -> None:
    props = json_schema(Evaluation)["properties"]
    assert props["summary"]["maxLength"] == SUMMARY_MAX_CHARS
    # a server without a grammar may write more: kept, not a failed evaluation
    long = "The episode covers solar power. " * 100
    ev = parse_reply(Evaluation, json.dumps({"ranked": [], "summary": long}))
    assert len(ev.summary) > SUMMARY_MAX_CHARS
    # the texts FakeOllama and real models write at length keep no limit
    window = json_schema(WindowResult)
    concept = window["$defs"]["Concept"]["properties"]["explanation"]
    assert "maxLength" not in concept
