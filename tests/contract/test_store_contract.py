"""The Store contract: what every backend (SQLite, memory, PostgreSQL) must do the same
way. The worker, the daemon and status rely on exactly these guarantees."""

from __future__ import annotations

import asyncio

import pytest

from ytpiped.errors import InvalidTransition
from ytpiped.states import STAGES, State
from ytpiped.store import Event, NewVideo, PerfSample, Store

IDS = [f"vid{i:08d}" for i in range(3)]


async def seeded(store: Store, n: int = 3) -> list[str]:
    ids = [f"vid{i:08d}" for i in range(n)]
    assert await store.add_videos([NewVideo(i, f"https://x/{i}", "video") for i in ids],
                                  now=1.0) == (n, 0)
    return ids


async def test_add_deduplicates_and_counts_every_state(store: Store) -> None:
    await seeded(store)
    assert await store.add_videos([NewVideo(IDS[0], "u", "video"),
                                   NewVideo("newvideo001", "u", "video")], now=2.0) == (1, 1)
    counts = await store.counts()
    assert set(counts) == {s.value for s in State}
    assert counts["queued"] == 4 and sum(counts.values()) == 4
    assert await store.counts_by_kind() == {"video": 4}
    got = await store.get("newvideo001")
    assert got is not None and (got.state, got.attempts, got.lease_token) == ("queued", 0, 0)
    assert await store.get("nosuchvideo") is None


async def test_claim_is_guarded_ordered_and_fenced(store: Store) -> None:
    await seeded(store)
    a = await store.claim("download", "w1", now=10, lease_s=60, limit=2)
    assert [r.id for r in a] == IDS[:2]
    assert all(r.state == "downloading" and r.lease_owner == "w1" and r.lease_until == 70
               and r.lease_token == 1 for r in a)
    b = await store.claim("download", "w2", now=10, lease_s=60, limit=5)
    assert [r.id for r in b] == IDS[2:]
    assert await store.claim("download", "w2", now=10, lease_s=60) == []


async def test_due_rows_first_and_deferred_rows_wait(store: Store) -> None:
    await seeded(store)
    (row,) = await store.claim("download", "w1", now=10, lease_s=60)
    await store.release(row.id, "w1", "downloading", now=11, next_attempt_at=100)
    assert await store.next_ready_at("download") == 0.0
    got = await store.claim("download", "w1", now=50, lease_s=60, limit=5)
    assert row.id not in [r.id for r in got]
    for r in got:
        await store.release(r.id, "w1", "downloading", now=51, next_attempt_at=200)
    assert await store.next_ready_at("download") == 100
    (again,) = await store.claim("download", "w1", now=100, lease_s=60)
    assert again.id == row.id and again.lease_token == 2
    await store.release(again.id, "w1", "downloading", now=101, spend_attempt=True,
                        kind="network", error="reset")
    back = await store.get(row.id)
    assert back is not None and (back.state, back.attempts, back.error_kind, back.error) == \
        ("queued", 1, "network", "reset")


async def test_complete_checks_state_owner_transition_and_fields(store: Store) -> None:
    await seeded(store)
    (row,) = await store.claim("download", "w1", now=10, lease_s=60)
    with pytest.raises(InvalidTransition, match="matched no row"):
        await store.complete(row.id, "intruder", "downloading", "downloaded", now=11)
    with pytest.raises(InvalidTransition, match="not allowed"):
        await store.complete(row.id, "w1", "downloading", "mined", now=11)
    with pytest.raises(ValueError, match="unknown outcome fields"):
        await store.complete(row.id, "w1", "downloading", "downloaded", now=11,
                             fields={"state": "x"})
    await store.complete(row.id, "w1", "downloading", "downloaded", now=11,
                         fields={"title": "T", "duration_s": 12.5},
                         info={"a": {"b": 1, "c": 2}}, event=Event("completed", "download"),
                         token=row.lease_token)
    got = await store.get(row.id)
    assert got is not None
    assert (got.state, got.title, got.duration_s, got.info, got.lease_owner, got.attempts) == \
        ("downloaded", "T", 12.5, {"a": {"b": 1, "c": 2}}, None, 0)
    (row,) = await store.claim("analyze", "w1", now=12, lease_s=60)
    await store.complete(row.id, "w1", "analyzing", "analyzed", now=13,
                         info={"a": {"c": None, "d": 3}, "z": [1]})
    got = await store.get(row.id)
    assert got is not None and got.info == {"a": {"b": 1, "d": 3}, "z": [1]}  # merge patch
    with pytest.raises(InvalidTransition):  # already moved on
        await store.complete(row.id, "w1", "analyzing", "analyzed", now=14)
    assert await store.events_of(row.id) == [(11.0, "download", "completed", None, None)]


async def test_fencing_token_refuses_every_write_of_a_stale_run(store: Store) -> None:
    await seeded(store)
    (stale,) = await store.claim("download", "host:1", now=10, lease_s=3)
    assert await store.reap(now=20) == 1
    (fresh,) = await store.claim("download", "host:1", now=21, lease_s=60)
    assert fresh.id == stale.id and fresh.lease_token == stale.lease_token + 1
    vid, running, tok = stale.id, "downloading", stale.lease_token
    assert not await store.renew(vid, "host:1", running, until=99, token=tok)
    assert not await store.holds(vid, running, tok)
    assert await store.holds(vid, running, fresh.lease_token)
    writes = [
        store.complete(vid, "host:1", running, "downloaded", now=22, token=tok),
        store.release(vid, "host:1", running, now=22, token=tok),
        store.fail(vid, "host:1", running, now=22, kind="x", error="y", token=tok),
        store.save_part(vid, "chunk", 0, {"stale": True}, now=22, token=tok),
        store.clear_parts(vid, "chunk", token=tok),
    ]
    for write in writes:
        with pytest.raises(InvalidTransition) as err:
            await write
        assert err.value.lease_lost
    assert await store.load_parts(vid, "chunk") == {}
    assert await store.renew(vid, "host:1", running, until=99, token=fresh.lease_token)
    await store.save_part(vid, "chunk", 0, {"fresh": True}, now=23, token=fresh.lease_token)
    await store.complete(vid, "host:1", running, "downloaded", now=24, token=fresh.lease_token)
    assert await store.load_parts(vid, "chunk") == {0: {"fresh": True}}
    with pytest.raises(InvalidTransition):  # a finished row takes no parts from its run
        await store.save_part(vid, "chunk", 1, {}, now=25, token=fresh.lease_token)


async def test_reaper_returns_expired_leases_without_spending_attempts(store: Store) -> None:
    await seeded(store)
    rows = await store.claim("download", "w1", now=10, lease_s=60, limit=3)
    assert await store.renew(rows[0].id, "w1", "downloading", until=500)
    assert await store.reap(now=100) == 2
    counts = await store.counts()
    assert counts["queued"] == 2 and counts["downloading"] == 1
    for r in rows:
        got = await store.get(r.id)
        assert got is not None and got.attempts == 0
    # start-up: every lease not of this process comes back, expired or not
    assert await store.reap(now=100, owner_not="w2", all_leases=True) == 1
    assert (await store.counts())["downloading"] == 0


async def test_a_start_reaps_only_its_own_hosts_leases_when_asked(store: Store) -> None:
    """Several hosts on one store: a daemon starting on host a takes back what a dead
    process of host a held, never what host b (alive) holds."""
    await seeded(store, 4)
    mine_old = await store.claim("download", "a:100", now=10, lease_s=600, limit=2)
    (theirs,) = await store.claim("download", "b:200", now=10, lease_s=600)
    (mine_now,) = await store.claim("download", "a:300", now=10, lease_s=600)
    assert await store.reap(now=11, owner_not="a:300", all_leases=True, owner_prefix="a:") == 2
    assert {r.id: r.state for r in await store.videos()} == {
        mine_old[0].id: "queued", mine_old[1].id: "queued", theirs.id: "downloading",
        mine_now.id: "downloading"}


async def test_renew_many_keeps_live_leases_from_the_reaper(store: Store) -> None:
    await seeded(store)
    a, b = await store.claim("download", "host:1", now=10, lease_s=3, limit=2)
    assert await store.renew_many([(a.id, a.state, a.lease_token),
                                   (b.id, b.state, b.lease_token + 7)], "host:1",
                                  until=100) == 1
    assert await store.reap(now=50) == 1
    got_a, got_b = await store.get(a.id), await store.get(b.id)
    assert got_a is not None and got_a.state == "downloading"
    assert got_b is not None and got_b.state == "queued"


async def test_every_running_state_reaps_back_to_its_resting_state(store: Store) -> None:
    await store.add_videos([NewVideo("x" * 11, "u", "video")], now=0)
    t = 1.0
    for stage, st in STAGES.items():
        (row,) = await store.claim(stage, "w", now=t, lease_s=1)
        assert row.state == st.running
        assert await store.reap(now=t + 5) == 1
        back = await store.get(row.id)
        assert back is not None and back.state == st.ready
        (row,) = await store.claim(stage, "w", now=t + 6, lease_s=1)
        await store.complete(row.id, "w", row.state, st.finished, now=t + 7)
        t += 10
    assert (await store.counts())["done"] == 1


async def test_fail_then_retry_failed_by_stage_kind_and_id(store: Store) -> None:
    ids = await seeded(store)
    (row,) = await store.claim("download", "w1", now=10, lease_s=60)
    await store.complete(row.id, "w1", "downloading", "downloaded", now=11)
    (row,) = await store.claim("analyze", "w1", now=12, lease_s=60)
    await store.fail(row.id, "w1", "analyzing", now=13, kind="bad_audio", error="not audio",
                     event=Event("failed", "analyze", "bad_audio", "not audio"))
    got = await store.get(row.id)
    assert got is not None
    assert (got.state, got.failed_stage, got.error_kind, got.attempts) == \
        ("failed", "analyze", "bad_audio", 1)
    assert await store.failures_by_kind() == {"bad_audio": 1}
    assert [r.id for r in await store.recent_failures(5)] == [row.id]
    assert await store.event_counts_by_kind("failed") == {"bad_audio": 1}
    assert await store.retry_failed(now=14, kind="network") == 0
    assert await store.retry_failed(now=14, ids=[ids[2]]) == 0
    assert await store.retry_failed(now=14, stage="analyze") == 1
    got = await store.get(row.id)
    assert got is not None and (got.state, got.attempts, got.error_kind, got.failed_stage) == \
        ("downloaded", 0, None, None)


async def test_give_back_attempts_only_to_rows_resting_after_those_failures(
        store: Store) -> None:
    a, b, c = await seeded(store)
    for vid in (a, b):
        (row,) = await store.claim("download", "w", now=10, lease_s=60)
        assert row.id == vid
        await store.release(vid, "w", "downloading", now=11, spend_attempt=True,
                            kind="forbidden", error="403", next_attempt_at=11)
    (row,) = await store.claim("download", "w", now=10, lease_s=60)  # c, still running
    back = Event("attempt_given_back", "download")
    assert await store.give_back_attempts({a: 1, b: 1, c: 1}, ["network"], now=12) == 0
    assert await store.give_back_attempts({a: 1, c: 1}, ["forbidden"], now=12,
                                          event=back) == 1
    got_a, got_b, got_c = [await store.get(v) for v in (a, b, c)]
    assert got_a is not None and (got_a.state, got_a.attempts) == ("queued", 0)
    assert got_b is not None and got_b.attempts == 1
    assert got_c is not None and got_c.state == "downloading"
    assert [e[2] for e in await store.events_of(a)] == ["attempt_given_back"]


async def test_remine_sends_only_done_videos_back(store: Store) -> None:
    (vid,) = await seeded(store, 1)
    for stage, st in STAGES.items():
        (row,) = await store.claim(stage, "w", now=1, lease_s=60)
        await store.complete(row.id, "w", st.running, st.finished, now=2)
    assert await store.remine({vid: "new prompt", "nosuchvideo1": "x"}, now=3) == 1
    got = await store.get(vid)
    assert got is not None and got.state == "transcribed"
    assert await store.remine({vid: "again"}, now=4) == 0
    assert (await store.events_of(vid))[-1] == (3.0, "mine", "remine", None, "new prompt")


async def test_retranscribe_sends_done_videos_back_with_their_parts_cleared(
        store: Store) -> None:
    kept, gone, busy = await seeded(store)
    for stage, st in STAGES.items():
        rows = await store.claim(stage, "w", now=1, lease_s=60, limit=3)
        for row in rows:
            if row.id == busy and stage == "evaluate":
                continue  # still evaluating: not done
            await store.complete(row.id, "w", st.running, st.finished, now=2,
                                 info={"retranscribe": {"model": "old", "at": 0.5}})
    for vid in (kept, gone, busy):
        await store.save_part(vid, "chunk", 0, {"bounds": [0, 1]}, now=2)
        await store.save_part(vid, "window", 0, {"status": "ok"}, now=2)
    moved = await store.retranscribe({kept: "analyzed", gone: "queued", busy: "analyzed",
                                      "nosuchvideo1": "queued"}, now=3, model="large-v3")
    assert moved == 2
    got = {v: await store.get(v) for v in (kept, gone, busy)}
    assert {v: r.state for v, r in got.items() if r} == {kept: "analyzed", gone: "queued",
                                                         busy: "evaluating"}
    for vid in (kept, gone):
        row = got[vid]
        assert row is not None and row.attempts == 0
        assert row.info["retranscribe"] == {"model": "large-v3", "at": 3.0}
        assert await store.load_parts(vid, "chunk") == {}
        assert await store.load_parts(vid, "window") == {}
    assert await store.load_parts(busy, "chunk") == {0: {"bounds": [0, 1]}}
    assert (await store.events_of(gone))[-1] == (
        3.0, "transcribe", "retranscribe", None, "audio downloaded again; model large-v3")
    assert (await store.claim("transcribe", "w", now=4, lease_s=60))[0].id == kept
    assert (await store.claim("download", "w", now=4, lease_s=60))[0].id == gone
    # again, without a model: the configured one (the earlier choice is not kept)
    for stage in ("transcribe", "mine", "evaluate"):
        st = STAGES[stage]
        if stage != "transcribe":
            await store.claim(stage, "w", now=5, lease_s=60)
        await store.complete(kept, "w", st.running, st.finished, now=5)
    assert await store.retranscribe({kept: "analyzed"}, now=6) == 1
    row = await store.get(kept)
    assert row is not None and row.info["retranscribe"].get("model") is None
    with pytest.raises(InvalidTransition):
        await store.retranscribe({kept: "mined"}, now=7)


async def test_events_counts_and_rates(store: Store) -> None:
    await store.record_event(10, "completed", video_id="v1", stage="download")
    await store.record_event(20, "completed", video_id="v2", stage="download")
    await store.record_event(20, "cooldown", video_id="v2", stage="download",
                             kind="rate_limited", message="429")
    await store.record_event(21, "retry", stage="mine")
    assert await store.event_count("download", "completed", since=15) == 1
    assert await store.event_count("download", "completed", since=0) == 2
    assert await store.event_counts_by_kind("cooldown") == {"rate_limited": 1}
    assert await store.event_counts_by_kind("retry") == {"error": 1}
    assert await store.events_of("v2") == [(20.0, "download", "completed", None, None),
                                           (20.0, "download", "cooldown", "rate_limited",
                                            "429")]


async def test_parts_round_trip_replace_and_clear(store: Store) -> None:
    (vid,) = await seeded(store, 1)
    await store.save_part(vid, "chunk", 1, {"text": "b"}, now=1)
    await store.save_part(vid, "chunk", 0, {"text": "a"}, now=1)
    await store.save_part(vid, "chunk", 1, {"text": "c"}, now=2)
    await store.save_part(vid, "window", 0, [1, 2], now=2)
    assert await store.load_parts(vid, "chunk") == {0: {"text": "a"}, 1: {"text": "c"}}
    await store.clear_parts(vid, "chunk")
    assert await store.load_parts(vid, "chunk") == {}
    assert await store.load_parts(vid, "window") == {0: [1, 2]}


async def test_buffer_and_remaining_audio(store: Store) -> None:
    ids = await seeded(store)
    for i in range(2):
        (row,) = await store.claim("download", "w", now=1, lease_s=60)
        await store.complete(row.id, "w", "downloading", "downloaded", now=2,
                             fields={"size_bytes": 1000 * (i + 1), "duration_s": 60.0})
    assert await store.buffer_stats() == (2, 3000)
    remaining = await store.remaining_audio_s()
    assert remaining["downloaded"] == (2, 120.0) and remaining["queued"] == (1, 0.0)
    assert [r.id for r in await store.videos("downloaded")] == ids[:2]
    assert len(await store.videos(limit=2)) == 2


async def test_perf_samples_keep_the_newest_in_order(store: Store) -> None:
    samples = [PerfSample("cpu", "tiny", "int8", 1, 10.0 * i, 1.0, float(i)) for i in range(5)]
    await store.add_perf_samples(samples[:3])
    await store.add_perf_samples(samples[3:])
    assert await store.perf_samples() == samples
    assert await store.perf_samples(limit=2) == samples[3:]


async def test_daemon_state_round_trip(store: Store) -> None:
    await store.set_state("stage:download", {"phase": "steady", "n": [1, 2]}, now=5)
    await store.set_state("stage:mine", {"workers": 2}, now=6)
    await store.set_state("daemon", {"pid": 1}, now=7)
    await store.set_state("stage:mine", {"workers": 3}, now=8)
    assert await store.get_state("stage:mine") == ({"workers": 3}, 8.0)
    assert await store.get_state("nothing") is None
    assert set(await store.all_state("stage:")) == {"stage:download", "stage:mine"}
    assert await store.check() == "ok"


async def test_update_state_changes_one_entry_at_a_time(store: Store) -> None:
    def bump(value: object) -> dict[str, int]:
        n = value["n"] if isinstance(value, dict) else 0
        return {"n": n + 1}

    assert await store.update_state("pacing:g", bump, now=3) == {"n": 1}
    # concurrent read-modify-writes (several pooled connections on PostgreSQL) lose none
    await asyncio.gather(*(store.update_state("pacing:g", bump, now=4) for _ in range(20)))
    assert await store.get_state("pacing:g") == ({"n": 21}, 4.0)
    assert await store.update_state("pacing:other", lambda v: [v], now=5) == [None]


async def test_higher_priority_is_claimed_first_and_re_adding_raises_it(store: Store) -> None:
    await store.add_videos([NewVideo("lowvideo001", "u", "video"),
                            NewVideo("lowvideo002", "u", "video")], now=1.0)
    await store.add_videos([NewVideo("urgentvid01", "u", "video")], now=2.0, priority=5)
    first = await store.claim("download", "w", now=3, lease_s=60)
    assert [r.id for r in first] == ["urgentvid01"] and first[0].priority == 5
    assert await store.add_videos([NewVideo("lowvideo002", "u", "video")], now=4.0,
                                  priority=9) == (0, 1)  # a duplicate, moved up
    assert await store.add_videos([NewVideo("lowvideo002", "u", "video")], now=4.0,
                                  priority=1) == (0, 1)  # never moved down
    second = await store.claim("download", "w", now=5, lease_s=60)
    assert [(r.id, r.priority) for r in second] == [("lowvideo002", 9)]
    # a priority holds through the stages
    await store.complete("urgentvid01", "w", "downloading", "downloaded", now=6)
    got = await store.get("urgentvid01")
    assert got is not None and got.priority == 5


async def test_absolute_audio_paths_become_relative_to_the_data_dir(store: Store) -> None:
    a, b = await seeded(store, 2)
    for path in ("/old/disk/data/audio/first.webm", "audio/second.m4a"):  # a's, then b's
        (row,) = await store.claim("download", "w", now=1, lease_s=60)
        await store.complete(row.id, "w", "downloading", "downloaded", now=2,
                             fields={"audio_path": path})
    assert await store.relative_audio_paths() == 1
    got = {v: (await store.get(v)).audio_path for v in (a, b)}  # type: ignore[union-attr]
    assert got == {a: "audio/first.webm", b: "audio/second.m4a"}
    assert await store.relative_audio_paths() == 0


async def test_skipped_and_subtitled_videos_and_unfollowed_sources(store: Store) -> None:
    ids = await seeded(store, 2)
    a, b = await store.claim("download", "w1", now=10, lease_s=60, limit=2)
    await store.complete(a.id, "w1", "downloading", "skipped", now=11,
                         info={"skipped": "shorter than 60 s"})
    await store.complete(b.id, "w1", "downloading", "transcribed", now=11,
                         info={"transcript": {"source": "youtube_subtitles"}})
    counts = await store.counts()
    assert (counts["skipped"], counts["transcribed"]) == (1, 1)
    got = await store.get(ids[0])
    assert got is not None and got.info["skipped"] == "shorter than 60 s"
    await store.set_state("follow:channel:@x", {"url": "u"}, now=12)
    await store.set_state("follow:channel:@x", None, now=13)  # `ytpiped unfollow`
    assert await store.all_state("follow:") == {"follow:channel:@x": (None, 13)}
