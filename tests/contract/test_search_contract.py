"""The search and listing part of the Store contract (`ytpiped search`, `reindex`, `ls`,
`show`, `logs`): every backend finds, ranks, filters and lists the same way. The memory
store does not stem words, so these tests search for words as they are written."""

from __future__ import annotations

import pytest

from ytpiped.errors import InvalidTransition
from ytpiped.store import Event, NewVideo, Store
from ytpiped.store.search import (
    ClaimDoc,
    Passage,
    SearchDocs,
    SearchQuery,
    VideoDoc,
    parse,
    video_doc,
)

VIDEOS = [  # id, title, channel, upload date
    ("aaaaaaaaaaa", "Energy talk", "Science Hour", "20240105"),
    ("bbbbbbbbbbb", "Garden talk", "Home Show", "20230610"),
    ("ccccccccccc", "Kitchen talk", "science hour", None),
]


async def seeded(store: Store) -> list[str]:
    await store.add_videos([NewVideo(v, f"https://www.youtube.com/watch?v={v}", "video")
                            for v, *_ in VIDEOS], now=1.0)
    rows = await store.claim("download", "w", now=2, lease_s=60, limit=3)
    meta = {v: (t, c, d) for v, t, c, d in VIDEOS}
    for r in rows:
        title, channel, date = meta[r.id]
        await store.complete(r.id, "w", "downloading", "downloaded", now=3,
                             fields={"title": title, "channel": channel, "upload_date": date})
    return [v for v, *_ in VIDEOS]


def claims(*texts: tuple[str, str]) -> SearchDocs:
    return SearchDocs(claims=tuple(ClaimDoc(i, t, e, "factual", 60.0 * i, 60.0 * i + 5, i + 1,
                                            10 - i) for i, (t, e) in enumerate(texts)))


def q(text: str, **kw: object) -> SearchQuery:
    return SearchQuery(parse(text), **kw)  # type: ignore[arg-type]


async def test_a_claim_is_found_by_a_word_of_its_evidence_with_its_video(store: Store) -> None:
    a, b, _ = await seeded(store)
    await store.index_video(a, claims(("Solar output doubled", "the panels on the roof"),
                                      ("Wind is cheap", "turbines everywhere")))
    await store.index_video(b, claims(("Tomatoes need sun", "grow them by a wall"),))
    (hit,) = await store.search(q("roof"))
    assert (hit.kind, hit.video_id, hit.idx, hit.text, hit.evidence) == \
        ("claim", a, 0, "Solar output doubled", "the panels on the roof")
    assert (hit.title, hit.channel, hit.upload_date, hit.url, hit.video_kind) == \
        ("Energy talk", "Science Hour", "20240105", f"https://www.youtube.com/watch?v={a}",
         "video")
    assert (hit.start_s, hit.end_s, hit.type, hit.rank, hit.importance) == \
        (0.0, 5.0, "factual", 1, 10)
    assert "**roof**" in hit.snippet and hit.score > 0
    assert await store.search(q("roof", where="transcripts")) == []
    assert sorted((h.video_id, h.idx) for h in await store.search(q("sun OR turbines"))) == \
        [(a, 1), (b, 0)]
    assert await store.search(q("solar -roof")) == []
    assert [h.text for h in await store.search(q("tomat*"))] == ["Tomatoes need sun"]


async def test_the_words_side_by_side_rank_first(store: Store) -> None:
    a, b, _ = await seeded(store)
    # as long as each other: only the phrase tells them apart (a tie would put idx 0 first)
    await store.index_video(a, claims(("storage of energy grows cheaper each year", ""),
                                      ("energy storage grows much cheaper each year", "")))
    await store.index_video(b, claims(("grid energy and home storage got cheaper", ""),))
    hits = await store.search(q("energy storage"))
    assert (hits[0].video_id, hits[0].idx) == (a, 1)
    assert len(hits) == 3 and hits[0].score > hits[1].score
    assert [(h.video_id, h.idx) for h in await store.search(q('"energy storage"'))] == [(a, 1)]


async def test_channel_and_date_filters(store: Store) -> None:
    a, b, c = await seeded(store)
    for vid in (a, b, c):
        await store.index_video(vid, claims(("compost helps", "said in every video"),))
    every = await store.search(q("compost"))
    assert sorted(h.video_id for h in every) == [a, b, c]
    assert sorted(h.video_id for h in await store.search(q("compost", channel="SCIENCE hour"))
                  ) == [a, c]
    assert [h.video_id for h in await store.search(q("compost", since="20240101"))] == [a]
    assert [h.video_id for h in await store.search(q("compost", since="20230101",
                                                     channel="home show"))] == [b]
    assert len(await store.search(q("compost", limit=2))) == 2


async def test_filters_follow_a_channel_and_date_recorded_after_indexing(store: Store) -> None:
    a, b, _ = await seeded(store)
    await store.index_video(a, SearchDocs(passages=(Passage(0, 0, 5, "compost talk"),),
                                          claims=claims(("compost helps", "")).claims,
                                          video=VideoDoc(description="all about compost")))
    await store.index_video(b, claims(("compost helps", ""),))
    claimed = await store.claim("analyze", "w", now=4, lease_s=60, limit=3)
    assert a in [r.id for r in claimed]
    await store.complete(a, "w", "analyzing", "analyzed", now=5,
                         fields={"channel": "Garden Hour", "upload_date": "20250301"})
    for where in ("claims", "transcripts", "videos"):
        assert [h.video_id for h in await store.search(
            q("compost", where=where, channel="garden hour"))] == [a]
        assert await store.search(q("compost", where=where, channel="science hour")) == []
        assert [h.video_id for h in await store.search(
            q("compost", where=where, since="20250215"))] == [a]
    assert sorted(h.video_id for h in await store.search(q("compost", since="20230610"))) == \
        [a, b]
    assert await store.search(q("compost", since="20230611", channel="home show")) == []


META = {  # as download.meta.metadata() keeps it (DATA/meta/<id>.json, info.meta)
    "title": "Energy talk", "channel": "Science Hour",
    "description": "We walk along the ridge.\nLater the volcanoes of the island erupt.",
    "tags": ["geology", "lava flows", ""], "chapters": [
        {"start": 0.0, "end": 60.0, "title": "Welcome"},
        {"start": 60.0, "end": 120.0, "title": "Magma chambers"}]}


async def test_a_video_is_found_by_a_word_only_in_its_description_tags_or_chapters(
        store: Store) -> None:
    a, b, _ = await seeded(store)
    await store.index_video(a, SearchDocs(video=video_doc(META)))
    await store.index_video(b, SearchDocs(video=video_doc({"description": "tomatoes"},
                                                          "Garden talk", "Home Show")))
    for word, field, text in (("volcanoes", "description", META["description"]),
                              ("lava", "tags", "geology, lava flows"),
                              ("magma", "chapters", "Welcome · Magma chambers"),
                              ("energy", "title", "Energy talk")):
        (hit,) = await store.search(q(word, where="videos"))
        assert (hit.kind, hit.video_id, hit.field, hit.text) == ("video", a, field, text)
        assert f"**{word}**" in hit.snippet.lower() and hit.score > 0
        assert (hit.title, hit.channel, hit.upload_date, hit.url, hit.video_kind) == \
            ("Energy talk", "Science Hour", "20240105",
             f"https://www.youtube.com/watch?v={a}", "video")
        assert (hit.start_s, hit.end_s) == (None, None)  # a video hit has no time
        assert await store.search(q(word, where="claims")) == []
        assert await store.search(q(word, where="transcripts")) == []
    # words from two fields, a phrase inside one, never a phrase across two
    assert [h.video_id for h in await store.search(q("ridge magma", where="videos"))] == [a]
    assert await store.search(q('"flows magma"', where="videos")) == []
    assert [h.video_id for h in await store.search(q("talk -geology", where="videos"))] == [b]
    assert await store.search_counts() == {"claims": 0, "passages": 0, "metadata": 2,
                                           "videos": 2}


async def test_a_match_in_the_title_or_tags_ranks_above_one_in_the_description(
        store: Store) -> None:
    a, b, c = await seeded(store)
    filler = "words that say nothing much at all here"
    await store.index_video(a, SearchDocs(video=VideoDoc(
        title="quiet evening", description=f"{filler} about the glacier")))
    await store.index_video(b, SearchDocs(video=VideoDoc(
        title="glacier evening", description=f"{filler} about the quiet")))
    await store.index_video(c, SearchDocs(video=VideoDoc(
        title="quiet evening", tags="glacier", description=f"{filler} about the")))
    hits = await store.search(q("glacier", where="videos"))
    assert [(h.video_id, h.field) for h in hits] == [(b, "title"), (c, "tags"),
                                                     (a, "description")]
    assert hits[0].score > hits[1].score > hits[2].score


async def test_channel_and_date_filters_of_the_video_index(store: Store) -> None:
    a, b, c = await seeded(store)
    for vid in (a, b, c):
        await store.index_video(vid, SearchDocs(video=VideoDoc(description="compost heaps")))
    assert sorted(h.video_id for h in await store.search(q("compost", where="videos"))) == \
        [a, b, c]
    assert sorted(h.video_id for h in await store.search(
        q("compost", where="videos", channel="SCIENCE hour"))) == [a, c]
    assert [h.video_id for h in await store.search(
        q("compost", where="videos", since="20240101"))] == [a]
    assert [h.video_id for h in await store.search(
        q("compost", where="videos", since="20230101", channel="home show"))] == [b]
    assert len(await store.search(q("compost", where="videos", limit=2))) == 2


async def test_a_video_document_is_replaced_by_a_new_download_and_removed_by_an_empty_one(
        store: Store) -> None:
    await store.add_videos([NewVideo("ddddddddddd", "https://x/d.mp3", "generic")], now=1)
    (row,) = await store.claim("download", "w", now=2, lease_s=60)
    docs = SearchDocs(video=video_doc({"title": "Rivers", "description": "floods in spring"}))
    with pytest.raises(InvalidTransition):  # a refused outcome indexes nothing
        await store.complete(row.id, "intruder", "downloading", "downloaded", now=3,
                             search=docs)
    assert await store.search(q("floods", where="videos")) == []
    await store.complete(row.id, "w", "downloading", "downloaded", now=3, search=docs,
                         fields={"title": "Rivers"}, token=row.lease_token)
    (hit,) = await store.search(q("floods", where="videos"))
    assert (hit.video_id, hit.url, hit.video_kind, hit.title, hit.field) == \
        (row.id, "https://x/d.mp3", "generic", "Rivers", "description")
    await store.index_video(row.id, SearchDocs(video=video_doc({"title": "Lakes"})))
    assert await store.search(q("floods", where="videos")) == []  # replaced, not added
    assert [h.field for h in await store.search(q("lakes", where="videos"))] == ["title"]
    await store.index_video(row.id, SearchDocs(claims=()))  # another index: kept
    assert len(await store.search(q("lakes", where="videos"))) == 1
    await store.index_video(row.id, SearchDocs(video=VideoDoc()))  # nothing known: removed
    assert await store.search(q("lakes", where="videos")) == []
    assert (await store.search_counts())["metadata"] == 0


async def test_a_claim_matched_in_its_evidence_has_the_match_marked(store: Store) -> None:
    a, *_ = await seeded(store)
    await store.index_video(a, claims(("Solar output doubled", "said beside the turbines"),))
    (hit,) = await store.search(q("turbines", channel="science hour", since="20240105"))
    assert "**turbines**" in hit.snippet


async def test_a_transcript_hit_carries_the_time_of_the_segment_holding_it(
        store: Store) -> None:
    a, *_ = await seeded(store)
    text = "we start with the weather. then the volcano erupted loudly"
    passage = Passage(0, 100.0, 130.0, text, ((0, 100.0), (text.index("then"), 112.5)))
    await store.index_video(a, SearchDocs(passages=(passage,)))
    (hit,) = await store.search(q("volcano", where="transcripts"))
    assert (hit.kind, hit.video_id, hit.idx, hit.start_s, hit.end_s, hit.text) == \
        ("transcript", a, 0, 112.5, 130.0, text)
    assert "**volcano**" in hit.snippet
    (first,) = await store.search(q("weather", where="transcripts"))
    assert first.start_s == 100.0
    assert await store.search(q("volcano")) == []  # the claims index holds nothing


async def test_indexing_replaces_one_kind_and_clear_empties_all(store: Store) -> None:
    a, b, c = await seeded(store)
    await store.index_video(a, SearchDocs(passages=(Passage(0, 0, 5, "hello there"),),
                                          claims=claims(("greeting said", "")).claims))
    await store.index_video(b, claims(("one", ""), ("two", "")))
    assert await store.search_counts() == {"claims": 3, "passages": 1, "metadata": 0,
                                           "videos": 2}
    await store.index_video(a, claims(("new claim", "")))  # passages stay
    assert await store.search_counts() == {"claims": 3, "passages": 1, "metadata": 0,
                                           "videos": 2}
    assert await store.search(q("greeting")) == []
    await store.index_video(b, SearchDocs(claims=()))
    assert await store.search_counts() == {"claims": 1, "passages": 1, "metadata": 0,
                                           "videos": 1}
    await store.index_video(c, SearchDocs(video=VideoDoc(title="kitchen")))
    assert await store.search_counts() == {"claims": 1, "passages": 1, "metadata": 1,
                                           "videos": 2}
    await store.clear_search()
    assert await store.search_counts() == {"claims": 0, "passages": 0, "metadata": 0,
                                           "videos": 0}
    assert await store.search(q("hello", where="transcripts")) == []
    assert await store.search(q("kitchen", where="videos")) == []


async def test_complete_indexes_in_its_transaction_and_a_refused_one_writes_nothing(
        store: Store) -> None:
    await store.add_videos([NewVideo("ddddddddddd", "https://x/d", "generic")], now=1)
    (row,) = await store.claim("download", "w", now=2, lease_s=60)
    docs = claims(("rivers flood in spring", ""))
    with pytest.raises(InvalidTransition):
        await store.complete(row.id, "intruder", "downloading", "downloaded", now=3,
                             search=docs)
    assert await store.search_counts() == {"claims": 0, "passages": 0, "metadata": 0,
                                           "videos": 0}
    await store.complete(row.id, "w", "downloading", "downloaded", now=3, search=docs,
                         token=row.lease_token)
    (hit,) = await store.search(q("rivers"))
    assert (hit.video_id, hit.url, hit.video_kind, hit.title) == \
        (row.id, "https://x/d", "generic", None)


async def test_video_claims_counts_and_orders_by_rank(store: Store) -> None:
    a, b, _ = await seeded(store)
    docs = SearchDocs(claims=(ClaimDoc(0, "third", rank=3), ClaimDoc(1, "unranked"),
                              ClaimDoc(2, "first", rank=1), ClaimDoc(3, "second", rank=2)))
    await store.index_video(a, docs)
    n, top = await store.video_claims(a, limit=3)
    assert n == 4 and [c.text for c in top] == ["first", "second", "third"]
    assert await store.video_claims(b) == (0, [])


async def test_find_videos_filters_in_the_order_added(store: Store) -> None:
    a, b, c = await seeded(store)
    await store.add_videos([NewVideo("PLx", "https://x/list", "playlist")], now=4)
    assert [r.id for r in await store.find_videos()] == [a, b, c, "PLx"]
    assert [r.id for r in await store.find_videos(state="downloaded")] == [a, b, c]
    assert [r.id for r in await store.find_videos(kind="playlist")] == ["PLx"]
    assert [r.id for r in await store.find_videos(channel="science HOUR")] == [a, c]
    assert [r.id for r in await store.find_videos(limit=2)] == [a, b]
    (row,) = await store.claim("analyze", "w", now=5, lease_s=60)
    await store.fail(row.id, "w", "analyzing", now=6, kind="decode", error="bad audio")
    (failed,) = await store.find_videos(state="failed", error_kind="decode")
    assert (failed.id, failed.error) == (row.id, "bad audio")
    assert await store.find_videos(error_kind="network") == []


async def test_event_log_follows_by_id_and_filters(store: Store) -> None:
    await store.record_event(10, "completed", video_id="v1", stage="download")
    await store.record_event(11, "failed", video_id="v2", stage="mine", kind="llm",
                             message="timeout")
    await store.record_event(12, "completed", video_id="v2", stage="download")
    every = await store.event_log()
    assert [(e.at, e.video_id, e.stage, e.event, e.kind, e.message) for e in every] == [
        (10.0, "v1", "download", "completed", None, None),
        (11.0, "v2", "mine", "failed", "llm", "timeout"),
        (12.0, "v2", "download", "completed", None, None)]
    ids = [e.id for e in every]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [e.at for e in await store.event_log(after=ids[0])] == [11.0, 12.0]
    assert [e.at for e in await store.event_log(limit=2)] == [11.0, 12.0]  # the newest
    assert [e.at for e in await store.event_log(video_id="v2", stage="download")] == [12.0]
    assert [e.at for e in await store.event_log(kind="llm")] == [11.0]
    assert await store.event_log(after=ids[-1]) == []
    await store.record_event(13, "cooldown", stage="download", kind="rate_limited")
    (new,) = await store.event_log(after=ids[-1])
    assert (new.event, new.video_id, new.kind) == ("cooldown", None, "rate_limited")


async def test_store_events_are_logged(store: Store) -> None:
    await seeded(store)
    (row,) = await store.claim("analyze", "w", now=5, lease_s=60)
    await store.complete(row.id, "w", "analyzing", "analyzed", now=6,
                         event=Event("completed", "analyze"))
    assert [(e.video_id, e.event, e.stage) for e in await store.event_log(video_id=row.id)] \
        == [(row.id, "completed", "analyze")]
