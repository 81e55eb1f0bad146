"""Prompt texts and message builders. A change to the summary, window or repair prompt (or
their schemas) changes MINE_PROMPT_VERSION, so every window is mined again; a change to the
evaluation prompt or schema changes only EVAL_PROMPT_VERSION: windows are kept and only the
evaluation is made again (`ytpiped remine`).

Prefix reuse: every window request of a video starts with the same system message, byte for
byte (the mining instructions, then the episode's title, channel and summary), and only the
last message holds the window itself. Ollama, vLLM and llama.cpp keep the KV cache of a
prompt's prefix, so windows 2..n of a video skip the shared part's prompt processing.

Transcript text goes between TRANSCRIPT_OPEN/CLOSE and the evaluation's claim list
between CLAIMS_OPEN/CLOSE, one `[N] (type) text` per line, so a reply can always be
traced to its input (FakeOllama builds its answers from exactly these blocks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ytpiped.mining.schema import (
    MAX_CLAIMS,
    MAX_CONCEPTS,
    MAX_PEOPLE,
    MAX_TOPICS,
    SUMMARY_MAX_CHARS,
    EpisodeSummary,
    Evaluation,
    Ranking,
    WindowResult,
    prompt_version,
)

TRANSCRIPT_OPEN = "<transcript>"
TRANSCRIPT_CLOSE = "</transcript>"
CLAIMS_OPEN = "<claims>"
CLAIMS_CLOSE = "</claims>"

Message = dict[str, str]

SUMMARY_SYSTEM = (
    "You summarise podcast and video transcripts. Read the beginning of the transcript and "
    "answer with JSON only: a summary of at most five sentences saying what the episode is "
    f"about and who speaks, and the main topics (at most {MAX_TOPICS})."
)

MINE_SYSTEM = (
    "You extract knowledge from one window of a transcript. Episode context is given so "
    "that claims are understood in context. Answer with JSON only, matching the schema.\n"
    f"- claims: at most {MAX_CLAIMS}, the most important; each a self-contained sentence a "
    "reader understands without the transcript; type is one of factual, causal, normative, "
    "forecast, definition, opinion, anecdote, other; evidence is a VERBATIM quote copied "
    "from the transcript window (no paraphrase); confidence 0-1 that the speaker asserts it.\n"
    f"- people: at most {MAX_PEOPLE} people named, with their role.\n"
    f"- concepts: at most {MAX_CONCEPTS} jargon terms and concepts, with a short "
    "explanation.\n"
    "Only use what this window says. Return empty lists when there is nothing."
)

EVAL_SYSTEM = (
    "You evaluate the claims mined from one episode. Answer with JSON only: rank the claims "
    "by importance (1-10, 10 highest) using their numbers, every one of them, mark a claim "
    "that repeats another "
    "with duplicate_of set to the other's number, and write a summary of the episode (one "
    f"or two paragraphs, at most {SUMMARY_MAX_CHARS} characters) based on the claims and the "
    "short summary."
)

RANK_SYSTEM = (
    "You rank one part of the claims mined from one episode (the episode has more claims "
    "than one answer ranks). Answer with JSON only: rank these claims by importance (1-10, "
    "10 highest) using their numbers, and mark a claim that repeats another of them with "
    "duplicate_of set to the other's number."
)

REPAIR_TEXT = (
    "Your previous reply could not be used: {error}. Reply again with JSON only, matching "
    "the schema exactly."
)

#: how window requests are laid out (part of the prompt version: a new layout mines again)
WINDOW_LAYOUT = "system: instructions + episode; user: window"

MINE_PROMPT_VERSION = prompt_version((WindowResult, EpisodeSummary), SUMMARY_SYSTEM, MINE_SYSTEM,
                                     REPAIR_TEXT, WINDOW_LAYOUT)
EVAL_PROMPT_VERSION = prompt_version((Evaluation, Ranking), EVAL_SYSTEM, RANK_SYSTEM,
                                     REPAIR_TEXT)


def _episode(title: str | None, channel: str | None) -> str:
    return f"Episode: {title or '(untitled)'}\nChannel: {channel or '(unknown)'}"


def summary_messages(title: str | None, channel: str | None, text: str) -> list[Message]:
    return [
        {"role": "system", "content": SUMMARY_SYSTEM},
        {"role": "user", "content": f"{_episode(title, channel)}\n\n"
                                    f"{TRANSCRIPT_OPEN}\n{text}\n{TRANSCRIPT_CLOSE}"},
    ]


def shared_prefix(title: str | None, channel: str | None, summary: str) -> Message:
    """The message every window of one video starts with (byte-identical across them)."""
    return {"role": "system", "content": (f"{MINE_SYSTEM}\n\n{_episode(title, channel)}\n"
                                          f"Episode summary: {summary or '(none)'}")}


def window_message(text: str, start: float, end: float, chapter: str | None = None) -> Message:
    """The part of a window request that is the window's own (with its chapter's title,
    in videos that have chapters)."""
    part = f"Chapter: {chapter}\n" if chapter else ""
    return {"role": "user", "content": (f"{part}Window: {start:.1f}s-{end:.1f}s\n\n"
                                        f"{TRANSCRIPT_OPEN}\n{text}\n{TRANSCRIPT_CLOSE}")}


def window_messages(title: str | None, channel: str | None, summary: str, text: str,
                    start: float, end: float, chapter: str | None = None) -> list[Message]:
    return [shared_prefix(title, channel, summary), window_message(text, start, end, chapter)]


def repair_messages(messages: Sequence[Mapping[str, str]], raw: str | None,
                    error: str) -> list[Mapping[str, str]]:
    """The original conversation, the rejected reply, and what was wrong with it. A reply
    cut at the token cap is not shown again (`raw` None): shown, it invites the model to
    carry on where it ran away, and it takes answer_tokens of the context."""
    shown = [] if raw is None else [{"role": "assistant", "content": raw}]
    return [*messages, *shown, {"role": "user", "content": REPAIR_TEXT.format(error=error)}]


def eval_messages(title: str | None, channel: str | None, summary: str,
                  claims: Sequence[Mapping[str, Any]], start: int = 0) -> list[Message]:
    """The evaluation request of `claims`, numbered from `start` (their place among the
    video's claims): the first part (start 0) asks for the summary too (EVAL_SYSTEM), a
    later part only for the ranking (RANK_SYSTEM)."""
    lines = [f"[{start + i}] ({c.get('type', 'other')}) {c['text']}"
             for i, c in enumerate(claims)]
    return [
        {"role": "system", "content": EVAL_SYSTEM if start == 0 else RANK_SYSTEM},
        {"role": "user", "content": (
            f"{_episode(title, channel)}\nShort summary: {summary or '(none)'}\n\n"
            f"{CLAIMS_OPEN}\n" + "\n".join(lines) + f"\n{CLAIMS_CLOSE}")},
    ]


def between(text: str, open_tag: str, close_tag: str) -> str | None:
    """The text inside the LAST open/close pair (the newest block in a conversation)."""
    i = text.rfind(open_tag)
    if i < 0:
        return None
    j = text.find(close_tag, i + len(open_tag))
    return text[i + len(open_tag):j if j >= 0 else len(text)].strip()
