"""What a grammar-constrained server (llama.cpp) lets through and the schema must cope
with: numbers outside their bounds are clamped and every clamp is recorded; the evaluation
summary has a length a grammar can stop at, while longer ones are still accepted; the
mining answer's lists have a most items (maxItems, also said in the prompt), and a longer
list is cut to it and recorded like a clamp."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from ytpiped.mining import prompts
from ytpiped.mining.schema import (
    MAX_CLAIMS,
    MAX_CONCEPTS,
    MAX_PEOPLE,
    MAX_RANKED,
    MAX_TOPICS,
    NAME_MAX_CHARS,
    ROLE_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    Clamp,
    EpisodeSummary,
    Evaluation,
    Ranking,
    WindowResult,
    json_schema,
    parse_reply,
)
from ytpiped.stages.evaluate import parts


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


def test_every_list_of_a_mining_answer_has_a_most_items_in_the_schema_and_prompt() -> None:
    window = json_schema(WindowResult)["properties"]
    assert {k: window[k]["maxItems"] for k in ("claims", "people", "concepts")} == \
        {"claims": MAX_CLAIMS, "people": MAX_PEOPLE, "concepts": MAX_CONCEPTS}
    assert json_schema(EpisodeSummary)["properties"]["topics"]["maxItems"] == MAX_TOPICS
    assert json_schema(Evaluation)["properties"]["ranked"]["maxItems"] == MAX_RANKED
    assert 20 * MAX_RANKED + SUMMARY_MAX_CHARS // 4 <= 0.8 * 1024
    # no evaluation request lists more claims than its answer may rank: more go in parts
    assert all(b - a <= MAX_RANKED for n in (1, 25, 26, 61, 1000) for a, b in parts(n))
    assert json_schema(Ranking)["properties"]["ranked"]["maxItems"] == MAX_RANKED
    assert "every one of them" in prompts.EVAL_SYSTEM
    # and the short texts inside them a length (in the schema only, as the summary's)
    defs = json_schema(WindowResult)["$defs"]
    assert [defs[m]["properties"][f]["maxLength"] for m, f in
            (("Person", "name"), ("Person", "role"), ("Concept", "term"))] == \
        [NAME_MAX_CHARS, ROLE_MAX_CHARS, NAME_MAX_CHARS]
    assert parse_reply(WindowResult, json.dumps({"claims": [], "concepts": [], "people": [
        {"name": "Ada", "role": "x" * (ROLE_MAX_CHARS + 1)}]})).people[0].role
    # small enough that the fullest answer fits the default answer_tokens (1024) with room:
    # ~70 tokens a claim, ~20 a person, ~50 a concept
    assert 70 * MAX_CLAIMS + 20 * MAX_PEOPLE + 50 * MAX_CONCEPTS <= 0.75 * 1024
    for text in (f"claims: at most {MAX_CLAIMS}", f"at most {MAX_PEOPLE} people",
                 f"concepts: at most {MAX_CONCEPTS}"):
        assert text in prompts.MINE_SYSTEM
    assert f"topics (at most {MAX_TOPICS})" in prompts.SUMMARY_SYSTEM


def claim(i: int) -> dict[str, object]:
    return {"text": f"Claim number {i}.", "type": "factual", "evidence": f"number {i}",
            "confidence": 0.5}


def test_a_list_past_its_most_items_is_cut_to_it_and_recorded_like_a_clamp() -> None:
    # a server that does not enforce the schema: too many of each; an invalid item past
    # the bound does not fail the answer (it is cut off unread)
    claims = [claim(i) for i in range(MAX_CLAIMS + 3)]
    claims[MAX_CLAIMS]["confidence"] = "high"
    raw = json.dumps({"claims": claims,
                      "people": [{"name": f"P{i}", "role": ""} for i in range(MAX_PEOPLE + 1)],
                      "concepts": [{"term": f"t{i}", "explanation": ""}
                                   for i in range(MAX_CONCEPTS + 2)]})
    clamps: list[Clamp] = []
    out = parse_reply(WindowResult, raw, clamps)
    assert [c.text for c in out.claims] == [f"Claim number {i}." for i in range(MAX_CLAIMS)]
    assert len(out.people) == MAX_PEOPLE and len(out.concepts) == MAX_CONCEPTS
    assert clamps == [Clamp("claims", MAX_CLAIMS + 3, MAX_CLAIMS),
                      Clamp("people", MAX_PEOPLE + 1, MAX_PEOPLE),
                      Clamp("concepts", MAX_CONCEPTS + 2, MAX_CONCEPTS)]
    clamps = []
    summary = parse_reply(EpisodeSummary, json.dumps(
        {"summary": "A talk.", "topics": [f"topic {i}" for i in range(MAX_TOPICS + 4)]}), clamps)
    assert summary.topics == [f"topic {i}" for i in range(MAX_TOPICS)]
    assert clamps == [Clamp("topics", MAX_TOPICS + 4, MAX_TOPICS)]
    clamps = []
    ev = parse_reply(Evaluation, json.dumps({"ranked": [
        {"id": i, "importance": 5, "duplicate_of": None} for i in range(MAX_RANKED + 1)],
        "summary": "ok"}), clamps)
    assert [r.id for r in ev.ranked] == list(range(MAX_RANKED))
    assert clamps == [Clamp("ranked", MAX_RANKED + 1, MAX_RANKED)]
    # lists within their bound record nothing
    clamps = []
    parse_reply(WindowResult, json.dumps({"claims": claims[:MAX_CLAIMS], "people": [],
                                          "concepts": []}), clamps)
    assert clamps == []


def nesting(rule: str) -> int:
    depth = deepest = 0
    for ch in rule:
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    return deepest


def test_the_bounds_reach_llama_cpp_s_grammar_at_a_depth_it_builds() -> None:
    """llama-cpp-python's converter (what its server runs on `response_format`) writes each
    bound as nested optional rules: the claims rule takes at most MAX_CLAIMS claims, and no
    rule nests deeper than the evaluation summary's maxLength, which the real server is
    known to build (at ~2000 it refuses)."""
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    rules = {}
    for model in (WindowResult, EpisodeSummary, Evaluation):
        gbnf = grammar.json_schema_to_gbnf(json.dumps(json_schema(model)))
        for line in gbnf.splitlines():
            name, _, body = line.partition(" ::= ")
            rules[f"{model.__name__}.{name}"] = body
    assert rules["WindowResult.claims"].count("claims-item") == MAX_CLAIMS
    assert rules["EpisodeSummary.topics"].count("string") == MAX_TOPICS
    assert max(nesting(body) for body in rules.values()) <= SUMMARY_MAX_CHARS


def test_a_raw_newline_inside_a_string_is_accepted() -> None:
    """llama-cpp-python's grammar lets raw control characters into strings (SmolLM2 wrote
    newlines into the evaluation summary): not a failed answer."""
    raw = '{"ranked": [], "summary": "First line.\nSecond line.\tEnd."}'
    assert parse_reply(Evaluation, raw).summary == "First line.\nSecond line.\tEnd."
    with pytest.raises(json.JSONDecodeError):  # broken JSON still is
        parse_reply(Evaluation, '{"ranked": [], "summary": "cut')
