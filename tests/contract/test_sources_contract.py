"""The Store contract for sources (issue 20), on every backend: a claim limited to the
entries feeds listed on other hosts (the download gate's while YouTube waits), and
`retry` queueing a skipped video anyway."""

from __future__ import annotations

import pytest

from ytpiped.store import NewVideo, Store


async def test_a_claim_limited_to_other_hosts_takes_every_url_not_on_youtube(
        store: Store) -> None:
    """Added directly or listed by a feed, a URL on another host is paced by that host."""
    await store.add_videos([NewVideo("youtubevid1", "https://www.youtube.com/watch?v=a",
                                     "video"),
                            NewVideo("url-direct", "https://example.org/a.mp3", "generic"),
                            NewVideo("PLlist00001", "https://www.youtube.com/playlist?list=x",
                                     "playlist")],
                           now=1.0)
    await store.add_videos([NewVideo("url-episode1", "https://feeds.example.org/1.mp3",
                                     "generic")], now=2.0, parent_id="url-feed")
    assert await store.next_ready_at("download", only="other_hosts") == 0.0
    rows = await store.claim("download", "w", now=5, lease_s=60, limit=5, only="other_hosts")
    assert sorted(r.id for r in rows) == ["url-direct", "url-episode1"]
    assert await store.claim("download", "w", now=5, lease_s=60, only="other_hosts") == []
    assert await store.next_ready_at("download", only="other_hosts") is None
    assert await store.next_ready_at("download") == 0.0
    rest = await store.claim("download", "w", now=5, lease_s=60, limit=5)
    assert sorted(r.id for r in rest) == ["PLlist00001", "youtubevid1"]
    with pytest.raises(ValueError, match="unknown claim limit"):
        await store.claim("download", "w", now=5, lease_s=60, only="nonsense")


async def test_retry_queues_skipped_videos_anyway_with_their_filters_bypassed(
        store: Store) -> None:
    ids = ["skippedvid1", "skippedvid2", "failedvid01"]
    await store.add_videos([NewVideo(i, f"https://x/{i}", "video") for i in ids], now=1.0)
    for row in await store.claim("download", "w", now=2, lease_s=60, limit=3):
        if row.id == "failedvid01":
            await store.fail(row.id, "w", "downloading", now=3, kind="network", error="x")
        else:
            await store.complete(row.id, "w", "downloading", "skipped", now=3,
                                 info={"skipped": "shorter than 60 s", "meta": {"t": 1}})
    assert await store.retry_skipped(4.0, ids=["skippedvid1", "failedvid01"]) == 1
    one = await store.get("skippedvid1")
    assert one is not None and (one.state, one.attempts, one.next_attempt_at) == (
        "queued", 0, 0.0)
    assert one.info == {"meta": {"t": 1}, "unfiltered": True}  # the reason is gone
    assert [(await store.get(i)).state for i in ids[1:]] == ["skipped", "failed"]  # type: ignore[union-attr]
    assert await store.retry_skipped(5.0) == 1  # all the others
    assert (await store.counts())["skipped"] == 0
    assert await store.retry_skipped(6.0) == 0
