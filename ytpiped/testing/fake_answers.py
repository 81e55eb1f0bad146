"""Deterministic, content-derived answers FakeOllama gives to the mining schemas.

- WindowResult: one claim per sentence of the window's transcript block (at least four
  words; without punctuation, runs of twelve words), evidence = that sentence verbatim;
  people = runs of two or more capitalised words inside a sentence; concepts = long words;
  each list at most as long as the schema allows (the first ones).
- EpisodeSummary: the first two sentences of the transcript block.
- Evaluation: every listed claim ranked (the MAX_RANKED most important); importance from
  its length; a claim whose text repeats an earlier one (ignoring case/punctuation) is
  marked duplicate_of it. Ranking (a later part of a video's claims): the same, without
  the summary.
Tests can therefore predict which window produced which claim, and where its quote is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ytpiped.mining.prompts import (
    CLAIMS_CLOSE,
    CLAIMS_OPEN,
    TRANSCRIPT_CLOSE,
    TRANSCRIPT_OPEN,
    between,
)
from ytpiped.mining.schema import MAX_CLAIMS, MAX_CONCEPTS, MAX_PEOPLE, MAX_RANKED, MAX_TOPICS

_SENT = re.compile(r"(?<=[.!?])\s+")
_CLAIM_LINE = re.compile(r"^\[(\d+)\]\s*(?:\(([^)]*)\)\s*)?(.*)$")
_NAME = re.compile(r"\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)+)\b")
#: the schema's maxItems of each list an answer has
LIST_BOUNDS = {"claims": MAX_CLAIMS, "people": MAX_PEOPLE, "concepts": MAX_CONCEPTS,
               "topics": MAX_TOPICS, "ranked": MAX_RANKED}


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for s in _SENT.split(" ".join(text.split())):
        words = s.split()
        if not words:
            continue
        if s[-1] in ".!?" or len(words) <= 12:
            out.append(s)
        else:  # no punctuation: runs of twelve words
            out.extend(" ".join(words[i:i + 12]) for i in range(0, len(words), 12))
    return out


def claim_type(sentence: str) -> str:
    low = f" {sentence.lower()} "
    if " because " in low or " causes " in low:
        return "causal"
    if " should " in low or " must " in low:
        return "normative"
    if " will " in low:
        return "forecast"
    return "factual"


def _confidence(text: str) -> float:
    return round(0.5 + int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) % 50 / 100, 2)


def window_answer(transcript: str) -> dict[str, Any]:
    claims: list[dict[str, Any]] = []
    people: dict[str, dict[str, str]] = {}
    concepts: dict[str, dict[str, str]] = {}
    for s in sentences(transcript):
        for m in _NAME.finditer(s):
            if m.start() > 0:
                people.setdefault(m.group(1), {"name": m.group(1), "role": "mentioned"})
        for w in re.findall(r"[A-Za-z]{10,}", s):
            concepts.setdefault(w.lower(), {"term": w.lower(), "explanation": s})
        if len(s.split()) >= 4 and len(claims) < MAX_CLAIMS:
            claims.append({"text": s, "type": claim_type(s), "evidence": s,
                           "confidence": _confidence(s)})
    return {"claims": claims, "people": list(people.values())[:MAX_PEOPLE],
            "concepts": list(concepts.values())[:MAX_CONCEPTS]}


def summary_answer(transcript: str) -> dict[str, Any]:
    sents = sentences(transcript)
    summary = " ".join(sents[:2]) or "An episode without speech."
    topics = sorted({w.lower() for w in re.findall(r"[A-Za-z]{7,}", summary)})[:MAX_TOPICS]
    return {"summary": summary, "topics": topics}


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def evaluation_answer(claims_block: str) -> dict[str, Any]:
    ranked: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    texts: list[str] = []
    for line in claims_block.splitlines():
        m = _CLAIM_LINE.match(line.strip())
        if not m:
            continue
        idx, text = int(m.group(1)), m.group(3)
        key = _norm(text)
        dup = first_seen.get(key)
        first_seen.setdefault(key, idx)
        importance = 1 + min(9, len(text.split()) // 2)
        ranked.append({"id": idx, "importance": importance, "duplicate_of": dup})
        if dup is None:
            texts.append(text)
    ranked.sort(key=lambda r: (-r["importance"], r["id"]))
    del ranked[MAX_RANKED:]  # the most important ones, as the schema allows
    summary = " ".join(texts) or "No claims were mined."
    return {"ranked": ranked, "summary": summary}


def conversation_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages)


def answer(schema: Any, prompt: str) -> str:
    """The reply content for a request whose `format` is `schema` and text is `prompt`."""
    title = schema.get("title") if isinstance(schema, Mapping) else None
    transcript = between(prompt, TRANSCRIPT_OPEN, TRANSCRIPT_CLOSE) or ""
    if title == "WindowResult":
        return json.dumps(window_answer(transcript))
    if title == "EpisodeSummary":
        return json.dumps(summary_answer(transcript))
    if title == "Evaluation":
        return json.dumps(evaluation_answer(between(prompt, CLAIMS_OPEN, CLAIMS_CLOSE) or ""))
    if title == "Ranking":  # a later part of a video's claims: no summary
        ranked = evaluation_answer(between(prompt, CLAIMS_OPEN, CLAIMS_CLOSE) or "")["ranked"]
        return json.dumps({"ranked": ranked})
    if schema == "json" or isinstance(schema, Mapping):
        return "{}"
    return "This is a reply from FakeOllama."


MALFORMED = '{"claims": [{"text": "unterminated'
WRONG_SCHEMA = '{"claims": "not a list", "people": 3}'


def out_of_range(content: str) -> str:
    """The answer with numbers a grammar without bounds lets through: every importance 0
    (the schema says 1-10), every confidence 5 (the schema says 0-1)."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: 0 if k == "importance" else 5 if k == "confidence" else walk(v)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return json.dumps(walk(json.loads(content)))


def overlong(content: str) -> str:
    """The answer with every non-empty bounded list (claims, people, concepts, topics,
    ranked) three items past its maxItems, its items repeated: what a server that does not
    enforce the schema lets a small model write."""
    node = json.loads(content)
    for key, most in LIST_BOUNDS.items():
        items = node.get(key) if isinstance(node, dict) else None
        if isinstance(items, list) and items:
            node[key] = [items[i % len(items)] for i in range(most + 3)]
    return json.dumps(node)


RAMBLE = " and then it goes on and on"


def ramble(content: str) -> str:
    """The answer with its first text running on (~40,000 characters): longer than any
    answer cap, so the server cuts it off mid-string."""
    done = False

    def walk(node: Any) -> Any:
        nonlocal done
        if isinstance(node, str) and not done:
            done = True
            return node + RAMBLE * 1500
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return json.dumps(walk(json.loads(content)))
