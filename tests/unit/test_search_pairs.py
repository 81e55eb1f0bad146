"""Phrases through the term-pair columns (`store.search.term_pairs`, schema version 7): the
rows a phrase finds with its pairs are exactly those FTS5 finds by the phrase alone."""

from __future__ import annotations

import random
from pathlib import Path

from ytpiped.store import NewVideo, SqliteDB
from ytpiped.store.search import (
    PAIR_JOIN,
    ClaimDoc,
    Passage,
    SearchDocs,
    SearchQuery,
    fts5_query,
    pairs_text,
    parse,
    term_pairs,
)

# few words, so phrases of them recur in and out of order; stems shared (pump, pumps,
# pumping), accents folded (café), case, punctuation and a non-Latin word
VOCAB = ["the", "of", "and", "heat", "pump", "pumps", "pumping", "Café", "cafe", "north",
         "it's", "you", "know", "what", "déjà", "vu", "Ωμέγα", "x-ray", "1970s", "running"]


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(VOCAB) for _ in range(n)]
    return " ".join(w + rng.choice(["", "", "", ",", "."]) for w in words)


def test_pairs_are_the_stemmed_terms_side_by_side() -> None:
    j = PAIR_JOIN
    assert term_pairs("Heat pumps, running!") == [f"{j}heat{j}pump", f"{j}pump{j}run"]
    assert term_pairs("solo") == [] and term_pairs("") == []
    # none across the two: a lone PAIR_JOIN keeps "aǂb" and "bǂc" apart
    assert pairs_text("x a b", "b c") == f"{j}x{j}a {j}a{j}b {j} {j}b{j}c"
    assert fts5_query(parse('"heat pumps" solar* "a b"*'), "text", "pairs") == (
        f'({{pairs}} : "{j}heat{j}pump" AND {{text}} : "solar"* AND {{text}} : "a b"*)')
    assert fts5_query(parse('"heat pump"')) == '"heat pump"'  # without the columns: as before


def test_a_phrase_finds_through_its_pairs_what_fts5_finds_by_the_phrase(tmp_path: Path) -> None:
    rng = random.Random(7)
    texts = [sentence(rng, rng.randint(3, 25)) for _ in range(400)]
    claims = [(sentence(rng, 8), sentence(rng, 12)) for _ in range(150)]
    with SqliteDB(tmp_path / "y.db", now=0) as db:
        db.add_videos([NewVideo("pairsvideo1", "https://example.org/a", "generic")], now=0)
        db.index_video("pairsvideo1", SearchDocs(
            passages=tuple(Passage(i, float(i), i + 1.0, t) for i, t in enumerate(texts)),
            claims=tuple(ClaimDoc(i, t, e) for i, (t, e) in enumerate(claims))))
        phrases = [" ".join(t.split()[a:a + k]) for t in texts[:60]
                   for a, k in [(rng.randrange(3), rng.randint(2, 4))]]
        phrases += [sentence(rng, rng.randint(2, 3)) for _ in range(60)]  # often nowhere
        # the last words of a claim's text and the first of its evidence: never a phrase
        phrases += [" ".join(t.split()[-1:] + e.split()[:2]) for t, e in claims[:40]]
        found_any = 0
        for phrase in phrases:
            node = parse(f'"{phrase}"')
            for table, cols, where in (("search_passages", "text", "transcripts"),
                                       ("search_claims", "text evidence", "claims")):
                fts = f"{table}_fts"
                plain = {r[0] for r in db.conn.execute(
                    f"SELECT d.idx FROM {fts} JOIN {table} d ON d.id = {fts}.rowid "
                    f"WHERE {fts} MATCH ?", (fts5_query(node, cols),))}
                got = {h.idx for h in db.search(SearchQuery(node, where, limit=1000))}  # type: ignore[arg-type]
                assert got == plain, (phrase, where)
                found_any += bool(got)
        assert found_any > 60  # most phrases taken from the texts are found
