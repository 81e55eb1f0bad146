"""The search language every store speaks, and the records search reads and writes.

A query is words (all must appear), "exact phrases", `a OR b`, `-word` or `NOT word`
(exclude), `prefix*` and parentheses; `AND` may be written and changes nothing. `parse`
turns it into a small tree or raises QuerySyntaxError saying what is wrong; each backend
translates the tree into its own engine's language (SQLite FTS5 `fts5_query`, PostgreSQL
`tsquery_text`, the memory store `Matcher`), so the syntax and its errors are the same
everywhere and no engine is ever handed a string it could fail to parse.

Words are runs of letters and digits (`covid-19` is the phrase "covid 19"), compared
without case or accents; SQLite and PostgreSQL also stem English words (`panels` finds
`panel`), the memory store does not.

There are three indexes (`SearchQuery.where`): transcript passages, evaluated claims, and
videos: one document a video of its metadata (`VideoDoc`: title, tags, chapter titles,
channel, description; a match in the title or tags weighs more than one in the
description).
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from ytpiped.errors import UsageError
from ytpiped.store.fts_terms import terms

Where = Literal["claims", "transcripts", "videos"]
#: what marks a matched word in a snippet
MARK = "**"
SNIPPET_WORDS = 16
SYNTAX_HELP = ('write words (all must appear), "an exact phrase", a OR b, -word to exclude, '
               "prefix*, (groups)")
_WORD = re.compile(r"\w+")
#: starts and joins two adjacent terms into one token of the pairs columns (a letter, so
#: FTS5's tokenizer keeps the pair whole)
PAIR_JOIN = "\u01c2"  # ǂ


class QuerySyntaxError(UsageError):
    """A search query that cannot be parsed (exit code 2); the message says where."""


# ---------------------------------------------------------------------- the query tree


@dataclass(frozen=True)
class Term:
    """One word, or the words of a phrase in order; `prefix`: the last word is a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class All:
    """Every `include` matches and no `exclude` does."""

    include: tuple[Node, ...]
    exclude: tuple[Node, ...] = ()


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


Node = Term | All | AnyOf


def words_of(text: str) -> list[str]:
    """The words of `text`, lower case (each engine folds accents its own way)."""
    return [w.lower() for w in _WORD.findall(text)]


def fold(word: str) -> str:
    """A word as the memory store compares it: lower case, accents removed."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = self._lex(query)
        self.pos = 0

    def error(self, what: str) -> QuerySyntaxError:
        return QuerySyntaxError(f"search query {self.query!r}: {what}; {SYNTAX_HELP}")

    def _lex(self, q: str) -> list[tuple[str, str]]:
        """(kind, text): word, phrase, (, ), or, not."""
        out: list[tuple[str, str]] = []
        i = 0
        while i < len(q):
            c = q[i]
            if c.isspace():
                i += 1
            elif c in "()":
                out.append((c, c))
                i += 1
            elif c == '"':
                end = q.find('"', i + 1)
                if end < 0:
                    raise self.error('a " is not closed')
                star = end + 1 < len(q) and q[end + 1] == "*"
                out.append(("phrase*" if star else "phrase", q[i + 1:end]))
                i = end + 1 + star
            elif c == "-" and i + 1 < len(q) and not q[i + 1].isspace() and (
                    i == 0 or q[i - 1].isspace() or q[i - 1] == "("):
                out.append(("not", "-"))
                i += 1
            else:
                j = i
                while j < len(q) and not q[j].isspace() and q[j] not in '()"':
                    j += 1
                word = q[i:j]
                kind = {"OR": "or", "AND": "and", "NOT": "not"}.get(word, "word")
                out.append((kind, word))
                i = j
        return out

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def parse(self) -> Node:
        if not self.tokens:
            raise self.error("nothing to search for")
        node = self.any_of()
        if self.peek() == ")":
            raise self.error("a ) has no ( before it")
        return node

    def any_of(self) -> Node:
        items = [self.all_of()]
        while self.peek() == "or":
            self.pos += 1
            if self.peek() in (None, ")", "or"):
                raise self.error("OR needs a word or phrase on both sides")
            items.append(self.all_of())
        return items[0] if len(items) == 1 else AnyOf(tuple(items))

    def all_of(self) -> Node:
        include: list[Node] = []
        exclude: list[Node] = []
        while self.peek() not in (None, ")", "or"):
            kind = self.peek()
            if kind == "and":
                self.pos += 1
                if self.peek() in (None, ")", "or", "and") or not (include or exclude):
                    raise self.error("AND needs a word or phrase on both sides")
                continue
            negate = kind == "not"
            if negate:
                self.pos += 1
                if self.peek() in (None, ")", "or", "and", "not"):
                    raise self.error("NOT (or -) needs a word or phrase after it")
            atom = self.atom()
            if atom is not None:
                (exclude if negate else include).append(atom)
        if self.peek() == "or" and not (include or exclude):
            raise self.error("OR needs a word or phrase on both sides")
        if not include:
            if exclude:
                raise self.error("only exclusions: add a word or phrase to find")
            raise self.error("no words to search for (words are letters and digits)")
        if len(include) == 1 and not exclude:
            return include[0]
        return All(tuple(include), tuple(exclude))

    def atom(self) -> Node | None:
        kind, text = self.tokens[self.pos]
        self.pos += 1
        if kind == "(":
            if self.peek() == ")":
                raise self.error("() holds nothing")
            node = self.any_of()
            if self.peek() != ")":
                raise self.error("a ( is not closed")
            self.pos += 1
            return node
        if kind == ")":  # pragma: no cover - all_of stops before a )
            raise self.error("a ) has no ( before it")
        prefix = kind == "phrase*" or (kind == "word" and text.endswith("*"))
        words = tuple(words_of(text))
        if not words:
            if prefix:
                raise self.error(f"{text!r}: a * needs a word before it (e.g. solar*)")
            if kind.startswith("phrase"):
                raise self.error(f'"{text}" holds no words')
            return None  # punctuation on its own: not a word
        if kind == "word" and prefix and not text.rstrip("*")[-1:].isalnum():
            raise self.error(f"{text!r}: a * must follow a word directly (e.g. solar*)")
        return Term(words, prefix)


def parse(query: str) -> Node:
    """The query's tree; raises QuerySyntaxError (a UsageError: exit 2) saying what is
    wrong and how to write it."""
    return _Parser(query).parse()


def phrase_boost(node: Node) -> Term | None:
    """For a query of two or more plain words: those words as one phrase, so a document
    that has them side by side in that order ranks first."""
    if isinstance(node, All) and len(node.include) >= 2 and all(
            isinstance(t, Term) and len(t.words) == 1 and not t.prefix for t in node.include):
        return Term(tuple(t.words[0] for t in node.include if isinstance(t, Term)))
    return None


# ---------------------------------------------------------------------- engine languages


def fts5_query(node: Node, columns: str = "", pairs: str = "") -> str:
    """The tree in SQLite FTS5's query syntax; every word quoted, so nothing in a query can
    be read as a column filter or an operator. A boosted query also matches its words as a
    phrase (bm25 adds that match's weight).

    `columns` (e.g. "text evidence"): the columns every word is looked for in. `pairs`:
    the table's column of adjacent term pairs (`pairs_text`); a phrase is then matched as
    the phrase of its pairs there ("a b c" as "ǂaǂb ǂbǂc": the same rows). FTS5 checks
    positions only in the few rows that hold those (rare) pairs, where the phrase of
    words is checked in every row holding all its words, and bm25 counts the rows a
    phrase is in by that same check over the whole index: for a phrase of common words
    ("of the", "you know what") that was most of a query's time."""
    def q(n: Node) -> str:
        return _fts5(n, columns, pairs)

    body = q(node)
    boost = phrase_boost(node)
    if boost is None:
        return body
    assert isinstance(node, All)
    found = f"({q(boost)} OR {q(All(node.include))})"
    if node.exclude:
        return f"{found} NOT ({' OR '.join(q(x) for x in node.exclude)})"
    return found


def _fts5(node: Node, columns: str, pairs: str) -> str:
    if isinstance(node, Term):
        found = term_pairs(" ".join(node.words)) if pairs and not node.prefix else []
        if found:
            return f'{{{pairs}}} : "{" ".join(found)}"'
        text = '"' + " ".join(node.words) + '"' + ("*" if node.prefix else "")
        return f"{{{columns}}} : {text}" if columns else text
    if isinstance(node, AnyOf):
        return "(" + " OR ".join(_fts5(i, columns, pairs) for i in node.items) + ")"
    found_all = " AND ".join(_fts5(i, columns, pairs) for i in node.include)
    if len(node.include) > 1:
        found_all = f"({found_all})"
    if not node.exclude:
        return found_all
    return (f"({found_all} NOT ("
            f"{' OR '.join(_fts5(x, columns, pairs) for x in node.exclude)}))")


def term_pairs(text: str) -> list[str]:
    """Each two adjacent terms of `text` as SQLite's index has them (stemmed: `terms`) as one
    token: PAIR_JOIN, a letter of no English word, before each (so that no word's prefix
    query, `solar*`, has to read the pairs that start with it)."""
    # a term with stray bytes (`fts_terms`: a rare cut of a non-ASCII letter) cannot be
    # stored as text: U+FFFD stands for them, the same on both sides of a match
    found = [t.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
             if not t.isascii() else t for t in terms(text)]
    return [PAIR_JOIN + a + PAIR_JOIN + b for a, b in itertools.pairwise(found)]


def pairs_text(*texts: str) -> str:
    """The pairs column of an index row of `texts` (a claim's text and evidence): the term
    pairs of each, a lone PAIR_JOIN between two so that no phrase of pairs runs across."""
    return f" {PAIR_JOIN} ".join(" ".join(term_pairs(text)) for text in texts)


def tsquery_text(node: Node) -> str:
    """The tree as PostgreSQL `to_tsquery` input (each word quoted, so to_tsquery stems it
    and never fails to parse it)."""
    if isinstance(node, Term):
        quoted = [f"'{w}'" for w in node.words]
        if node.prefix:
            quoted[-1] += ":*"
        return "(" + " <-> ".join(quoted) + ")"
    if isinstance(node, AnyOf):
        return "(" + " | ".join(tsquery_text(i) for i in node.items) + ")"
    parts = [tsquery_text(i) for i in node.include]
    parts += [f"!{tsquery_text(x)}" for x in node.exclude]
    return "(" + " & ".join(parts) + ")"


# ---------------------------------------------------------------------- records


@dataclass(frozen=True)
class Passage:
    """A stretch of transcript (consecutive segments, about half a minute): what a
    transcript search finds. `marks`: (character offset in `text`, start s) of each
    segment, so a hit's time is that of the segment holding the match."""

    idx: int
    start_s: float
    end_s: float
    text: str
    marks: tuple[tuple[int, float], ...] = ()

    def time_at(self, offset: int) -> float:
        at = self.start_s
        for off, start in self.marks:
            if off > offset:
                break
            at = start
        return at


@dataclass(frozen=True)
class ClaimDoc:
    """An evaluated claim as search indexes it (duplicates are not indexed)."""

    idx: int  # its place in DATA/mining/<id>.json's claims
    text: str
    evidence: str = ""
    type: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    rank: int | None = None
    importance: int | None = None


#: the kinds of row that have a video document (a playlist or channel row has none)
VIDEO_KINDS = ("video", "generic")
TAG_SEP = ", "
CHAPTER_SEP = " · "


@dataclass(frozen=True)
class VideoDoc:
    """A video's metadata as the video index holds it: one document a video, its tags and
    chapter titles each joined into one text. A document with no words is no document:
    writing it removes the video's. The fields are in the order a match in them weighs
    (a hit's snippet comes from the first that holds a match)."""

    title: str = ""
    tags: str = ""
    chapters: str = ""
    channel: str = ""
    description: str = ""

    def texts(self) -> tuple[str, ...]:
        """The fields' texts in VIDEO_FIELDS order."""
        return tuple(getattr(self, f) for f in VIDEO_FIELDS)

    @property
    def empty(self) -> bool:
        return not any(_WORD.search(t) for t in self.texts())


VIDEO_FIELDS = tuple(f.name for f in fields(VideoDoc))
#: how much a match in each of VIDEO_FIELDS weighs (SQLite's bm25 column weights, the memory
#: store's; PostgreSQL's setweight classes A, B, C, C, D follow the same order)
VIDEO_WEIGHTS = (8.0, 4.0, 2.0, 2.0, 1.0)


def video_doc(meta: Mapping[str, Any] | None, title: str | None = None,
              channel: str | None = None) -> VideoDoc:
    """The document of a video from its stored metadata (download.meta.metadata(): DATA/
    meta/<id>.json, info.meta) and its row's title and channel (which come first; a video
    downloaded before metadata was kept has only these)."""
    m: Mapping[str, Any] = meta if isinstance(meta, Mapping) else {}
    raw_tags, raw_chapters = m.get("tags"), m.get("chapters")
    tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
    chapters: list[Any] = raw_chapters if isinstance(raw_chapters, list) else []
    return VideoDoc(
        title=_text(title or m.get("title")),
        tags=TAG_SEP.join(t for t in (_text(x) for x in tags) if t),
        chapters=CHAPTER_SEP.join(t for t in (_text(c.get("title")) for c in chapters
                                              if isinstance(c, Mapping)) if t),
        channel=_text(channel or m.get("channel") or m.get("uploader")),
        description=str(m.get("description") or "").strip())


def _text(v: Any) -> str:
    """One line of text (None: empty)."""
    return " ".join(str(v).split()) if v is not None else ""


@dataclass(frozen=True)
class SearchDocs:
    """What one video adds to the search indexes; None: leave that index as it is."""

    passages: tuple[Passage, ...] | None = None
    claims: tuple[ClaimDoc, ...] | None = None
    video: VideoDoc | None = None  # its metadata; an empty VideoDoc removes the video's


@dataclass(frozen=True)
class SearchQuery:
    node: Node
    where: Where = "claims"
    channel: str | None = None  # compared without case
    since: str | None = None  # YYYYMMDD: uploaded on or after (videos without a date drop)
    limit: int = 20


@dataclass(frozen=True)
class SearchHit:
    """One match with its video; `score`: higher is better (comparable within one index).
    A video hit (its metadata matched) has no time; `field` names the field its snippet
    and `text` come from."""

    kind: Literal["claim", "transcript", "video"]
    video_id: str
    idx: int
    score: float
    snippet: str  # matched words between MARKs
    text: str
    start_s: float | None
    end_s: float | None
    url: str
    video_kind: str
    title: str | None = None
    channel: str | None = None
    upload_date: str | None = None
    evidence: str | None = None
    type: str | None = None
    rank: int | None = None
    importance: int | None = None
    field: str | None = None


def video_hit(row: Sequence[Any]) -> SearchHit:
    """A hit of the video index from (video_id, score, url, kind, title, channel, upload
    date, the VIDEO_FIELDS' texts, their snippets): the first field holding a match."""
    vid, score, url, vkind, title, channel, date, *rest = row
    n = len(VIDEO_FIELDS)
    texts, snips = rest[:n], rest[n:]
    at = next((i for i, x in enumerate(snips) if MARK in x), 0)
    return SearchHit(kind="video", video_id=vid, idx=0, score=float(score),
                     snippet=snips[at], text=texts[at], start_s=None, end_s=None, url=url,
                     video_kind=vkind, title=title, channel=channel, upload_date=date,
                     field=VIDEO_FIELDS[at])


def first_mark(highlighted: str, start: str) -> int:
    """Offset in the original text of the first highlighted word (0 when none): the text
    before the first `start` marker is unchanged."""
    at = highlighted.find(start)
    return max(0, at)


# ---------------------------------------------------------------------- the memory engine


def _folded(node: Node) -> Node:
    if isinstance(node, Term):
        return Term(tuple(fold(w) for w in node.words), node.prefix)
    if isinstance(node, AnyOf):
        return AnyOf(tuple(_folded(i) for i in node.items))
    return All(tuple(_folded(i) for i in node.include), tuple(_folded(x) for x in node.exclude))


def doc_words(text: str) -> list[str]:
    """A document's words as the memory store compares them."""
    return [fold(w) for w in _WORD.findall(text)]


class Matcher:
    """The query tree evaluated in Python (the memory store): exact words (no stemming),
    prefixes, phrases; a score from how often the words occur, the phrase boost on top."""

    def __init__(self, node: Node) -> None:
        self.node = _folded(node)
        self.boost = phrase_boost(self.node)

    def matches(self, words: Sequence[str]) -> bool:
        return self._match(self.node, words)

    def _match(self, node: Node, words: Sequence[str]) -> bool:
        if isinstance(node, Term):
            return bool(self.positions(node, words))
        if isinstance(node, AnyOf):
            return any(self._match(i, words) for i in node.items)
        return all(self._match(i, words) for i in node.include) and not any(
            self._match(x, words) for x in node.exclude)

    @staticmethod
    def positions(term: Term, words: Sequence[str]) -> list[int]:
        n = len(term.words)
        found = []
        for i in range(len(words) - n + 1):
            ok = all(words[i + k] == term.words[k] for k in range(n - 1))
            last = words[i + n - 1]
            ok = ok and (last.startswith(term.words[-1]) if term.prefix else
                         last == term.words[-1])
            if ok:
                found.append(i)
        return found

    def terms(self, node: Node | None = None) -> list[Term]:
        """The terms whose matches count (not the excluded ones)."""
        node = self.node if node is None else node
        if isinstance(node, Term):
            return [node]
        if isinstance(node, AnyOf):
            return [t for i in node.items for t in self.terms(i)]
        return [t for i in node.include for t in self.terms(i)]

    def score(self, fields: Sequence[tuple[Sequence[str], float]]) -> float:
        """(words, weight) per field."""
        total = 0.0
        for words, weight in fields:
            for t in self.terms():
                hits = len(self.positions(t, words))
                total += weight * math.log1p(hits) / math.sqrt(1 + len(words) / 50)
            if self.boost is not None and self.positions(self.boost, words):
                total += 10.0 * weight
        return total

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the matched words in `text`."""
        tokens = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        words = [fold(text[a:b]) for a, b in tokens]
        marked: set[int] = set()
        for t in self.terms():
            for i in self.positions(t, words):
                marked.update(range(i, i + len(t.words)))
        return [tokens[i] for i in sorted(marked)]

    def snippet(self, text: str, size: int = SNIPPET_WORDS) -> tuple[str, int]:
        """(a window of about `size` words around the first match with every match between
        MARKs, the first match's offset in `text`)."""
        spans = self.spans(text)
        tokens = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        if not spans or not tokens:
            return text[:200], 0
        first = next(i for i, t in enumerate(tokens) if t == spans[0])
        lo = max(0, first - size // 4)
        hi = min(len(tokens), lo + size)
        a, b = tokens[lo][0], tokens[hi - 1][1]
        out, at = [], a
        for s, e in spans:
            if s < a or e > b:
                continue
            out += [text[at:s], MARK, text[s:e], MARK]
            at = e
        out.append(text[at:b])
        return (("…" if lo else "") + "".join(out) + ("…" if hi < len(tokens) else ""),
                spans[0][0])
