"""The search language (parse, the FTS5 and tsquery translations) and what search indexes:
transcript passages, claims, deep links."""

from __future__ import annotations

import pytest

from ytpiped import search
from ytpiped.errors import UsageError
from ytpiped.store.search import (
    All,
    AnyOf,
    QuerySyntaxError,
    Term,
    fts5_query,
    parse,
    tsquery_text,
)


def test_parse_words_phrases_or_not_prefix_and_groups() -> None:
    assert parse("solar") == Term(("solar",))
    assert parse('solar "heat pump" -gas') == All((Term(("solar",)), Term(("heat", "pump"))),
                                                  (Term(("gas",)),))
    assert parse("a OR b c") == AnyOf((Term(("a",)), All((Term(("b",)), Term(("c",))))))
    assert parse("(a OR b) AND c*") == All((AnyOf((Term(("a",)), Term(("b",)))),
                                            Term(("c",), prefix=True)))
    assert parse("covid-19 NOT flu") == All((Term(("covid", "19")),), (Term(("flu",)),))


@pytest.mark.parametrize(("query", "says"), [
    ('"unclosed', "is not closed"),
    ("(a OR b", "( is not closed"),
    ("a)", ") has no ("),
    ("OR a", "OR needs"),
    ("a OR", "OR needs"),
    ("-gas", "only exclusions"),
    ("", "nothing to search for"),
    ("()", "() holds nothing"),
    ("*", "a * needs a word"),
    ("!!!", "no words to search for"),
])
def test_syntax_errors_say_what_is_wrong_and_are_usage_errors(query: str, says: str) -> None:
    with pytest.raises(QuerySyntaxError, match=says.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")) as err:
        parse(query)
    assert isinstance(err.value, UsageError) and "exact phrase" in str(err.value)


def test_engine_queries_quote_every_word() -> None:
    node = parse('title:x "a b"* -NEAR')
    assert fts5_query(node) == '(("title x" AND "a b"*) NOT ("near"))'
    assert fts5_query(parse("energy storage")) == \
        '("energy storage" OR ("energy" AND "storage"))'
    assert tsquery_text(parse("it's OR solar*")) == "(('it' <-> 's') | ('solar':*))"


def test_passages_group_segments_and_remember_each_start() -> None:
    segs = [{"start": 0.0, "end": 4.0, "text": " Hello  there."},
            {"start": 4.0, "end": 9.0, "text": "General Kenobi."},
            {"start": 9.0, "end": 10.0, "text": "   "},
            {"start": 31.0, "end": 35.0, "text": "Later words."}]
    first, second = search.passages(segs)
    assert (first.idx, first.start_s, first.end_s, first.text) == \
        (0, 0.0, 9.0, "Hello there. General Kenobi.")
    assert first.marks == ((0, 0.0), (13, 4.0))
    assert first.time_at(first.text.index("Kenobi")) == 4.0 and first.time_at(0) == 0.0
    assert (second.idx, second.start_s, second.text) == (1, 31.0, "Later words.")
    long = [{"start": float(i), "end": i + 1.0, "text": "x" * 200} for i in range(5)]
    assert [len(p.text) for p in search.passages(long)] == [401, 401, 200]


def test_claim_docs_skip_duplicates_and_keep_their_place() -> None:
    doc = {"claims": [{"text": "one", "evidence": "e", "start": 3, "rank": 2},
                      {"text": "dup", "duplicate_of": 0}, "junk", {"text": " "},
                      {"text": "two", "importance": 7, "start": True}]}
    got = search.claim_docs(doc)
    assert [(c.idx, c.text, c.evidence, c.start_s, c.rank, c.importance) for c in got] == \
        [(0, "one", "e", 3.0, 2, None), (4, "two", "", None, None, 7)]


def test_deep_links_youtube_and_generic() -> None:
    assert search.deep_link("dQw4w9WgXcQ", "https://youtu.be/dQw4w9WgXcQ", "video", 123.9) == \
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=123s"
    assert search.deep_link("dQw4w9WgXcQ", "u", "video", None) == \
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert search.deep_link("url-3f2a", "https://example.org/a.mp3", "generic", 50) == \
        "https://example.org/a.mp3"
    assert search.stamp(3723) == "1:02:03" and search.stamp(65) == "01:05"
    assert search.stamp(None) == "--:--"


def test_since_takes_iso_dates_only() -> None:
    assert search.parse_since("2024-03-01") == "20240301"
    assert search.parse_since("20240301") == "20240301"
    with pytest.raises(UsageError, match=r"--since '2024-3-1'.*YYYY-MM-DD"):
        search.parse_since("2024-3-1")
