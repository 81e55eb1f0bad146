"""`PostgresStore`: the `Store` protocol on PostgreSQL (psycopg 3, async, with a connection
pool), for several hosts running `ytpiped run` on one database.

Claims are `SELECT … FOR UPDATE SKIP LOCKED` in one transaction with the lease, so hosts
claiming at once never wait for each other or take the same row. Every state change is
guarded like SQLite's (state, owner, fencing token) and raises InvalidTransition when the
guard matches nothing.

Lease times come from the database's clock (`db_clock=True`, the default): a claim leases
until the server's now + lease_s, a renewal until the server's now + the time the caller
asked for (measured on the caller's clock, so only durations cross hosts, never absolute
times), and the reaper expires a lease when the server's now passes it. A host whose
clock is off by an hour can therefore neither expire a live lease of another host nor
keep a dead one's. Everything else (retry times, event times, updated_at) is the `now`
the caller passes, as for SQLite. `db_clock=False` uses the callers' times for leases too:
the contract tests drive every backend with explicit times that way.

Several hosts: a store made with `host` stamps that host on every event it writes and on
every video whose audio it downloads (`audio_host`); unless `shared_files`, analysis and
transcription are claimed only on the host holding the audio, the download buffer is
counted per host, and `requeue_lost_audio` sends videos whose audio host went silent
before their transcript was made back to download. Transcripts and mining results travel
through the store (ytpiped.outputs), so mining and evaluation run on any host. Every
change that makes work ready NOTIFYs `ytpiped_work` with the state reached; `listen` turns
those into wake-ups on every host (the poll is the fallback).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from ytpiped.clock import Clock, SystemClock
from ytpiped.errors import InvalidTransition
from ytpiped.states import IN_PROGRESS, PREVIOUS, STAGE_OF, STAGES, State, check
from ytpiped.store.model import (
    BUFFER_STATES,
    UNFILTERED_PATCH,
    Event,
    PerfSample,
    StoreNotReady,
    StoreUnavailable,
    VideoRow,
    claim_only,
    lease_guard,
    outcome_fields,
    retranscribe_message,
)
from ytpiped.store.pg_schema import SCHEMA_VERSION, migrate
from ytpiped.store.pg_search import PgSearch
from ytpiped.store.search import SearchDocs

ADD_BATCH = 50_000
#: the database server's clock, in seconds since the epoch
DB_NOW = "extract(epoch FROM clock_timestamp())::double precision"

_FIELDS = list(VideoRow.__dataclass_fields__)
_COLUMNS = ", ".join(_FIELDS)
_REAP_CASE = " ".join(f"WHEN '{run.value}' THEN '{rest.value}'" for run, rest in PREVIOUS.items())
_RUNNING = ", ".join(f"'{s.value}'" for s in IN_PROGRESS)
#: the channel of wake-ups; the payload is the state work reached ("*": any)
CHANNEL = "ytpiped_work"
#: stages that read files an earlier stage wrote on its host (the audio, the transcript,
#: the mined claims), so run on that host unless shared_files
LOCAL_AUDIO_STAGES = ("analyze", "transcribe")
#: resting states whose inputs sit on one host's disk
_AUDIO_RESTING = (State.DOWNLOADED.value, State.ANALYZED.value)


def _row(values: Sequence[Any]) -> VideoRow:
    return VideoRow(*values)


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[-1]}"))


class PostgresStore(PgSearch):
    """The `Store` protocol over a PostgreSQL connection pool (search and the listings are
    in PgSearch, store/pg_search.py)."""

    def __init__(self, url: str, now: float = 0.0, *, clock: Clock | None = None,
                 db_clock: bool = True, readonly: bool = False, pool_size: int = 10,
                 connect_timeout_s: float = 30.0, host: str | None = None,
                 shared_files: bool = True) -> None:
        self.url = url
        self.host = host
        self.shared_files = shared_files
        self._now = now
        self.clock = clock or SystemClock()
        self.db_clock = db_clock
        self.readonly = readonly
        self._pool_size = pool_size
        self._connect_timeout_s = connect_timeout_s
        self._pool: Any = None  # psycopg_pool.AsyncConnectionPool, imported on open

    @property
    def opened(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        """Connect, then create or migrate the schema (readonly: only check it is there).
        One direct connection first: a wrong host or password fails at once with the
        server's own words, not after the pool's timeout."""
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=max(1, round(self._connect_timeout_s)))
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL store at "
                                   f"{redact(self.url)} (key 'store.url'): "
                                   f"{str(exc).strip()}") from None
        async with conn:
            if self.readonly:
                if await _version(conn) is None:
                    raise StoreNotReady(f"{redact(self.url)}: no ytpiped schema yet")
            else:
                await migrate(conn, self._now)
        pool = AsyncConnectionPool(self.url, min_size=1, max_size=self._pool_size, open=False,
                                   timeout=self._connect_timeout_s, name="ytpiped")
        try:
            await pool.open(wait=True, timeout=self._connect_timeout_s)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    def begin_close(self) -> None:
        return None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        """A connection in a transaction: committed when the block ends, rolled back when it
        raises."""
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open")
        async with self._pool.connection() as conn:
            yield conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._tx() as conn:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall())

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        async with self._tx() as conn:
            cur = await conn.execute(sql, params)
            row: tuple[Any, ...] | None = await cur.fetchone()
            return row

    # ---------------------------------------------------------------- lease times

    def _until(self, seconds: float) -> tuple[str, float]:
        """SQL and parameter for "now + seconds" on the lease clock."""
        return (f"{DB_NOW} + %s", seconds) if self.db_clock else ("%s", seconds)

    def _lease_for(self, now: float, lease_s: float) -> tuple[str, float]:
        return self._until(lease_s) if self.db_clock else ("%s", now + lease_s)

    def _renewed_until(self, until: float) -> tuple[str, float]:
        """A renewal `until` (the caller's clock) as lease SQL: the database's now plus what
        is left of it on the caller's clock."""
        return self._until(until - self.clock.now()) if self.db_clock else ("%s", until)

    # ---------------------------------------------------------------- adding

    async def add_videos(self, videos: Iterable[tuple[str, str, str]], now: float,
                         parent_id: str | None = None, priority: int = 0) -> tuple[int, int]:
        added = total = 0
        rows = sorted(videos)
        async with self._tx() as conn:
            for start in range(0, len(rows), ADD_BATCH):
                batch = rows[start:start + ADD_BATCH]
                cur = await conn.execute(
                    "INSERT INTO videos (id, url, kind, parent_id, created_at, updated_at, "
                    "priority) SELECT i, u, k, %s, %s, %s, %s FROM unnest(%s::text[], "
                    "%s::text[], %s::text[]) WITH ORDINALITY AS t(i, u, k, n) ORDER BY n "
                    "ON CONFLICT (id) DO NOTHING",
                    (parent_id, now, now, priority, [r[0] for r in batch],
                     [r[1] for r in batch], [r[2] for r in batch]))
                added += cur.rowcount
                if priority:  # ids already queued move up (never down) to this priority
                    await conn.execute(
                        "UPDATE videos SET priority = %s WHERE id = ANY(%s::text[]) AND "
                        "priority < %s", (priority, [r[0] for r in batch], priority))
                total += len(batch)
            if added:
                await _notify(conn, State.QUEUED.value)
        return added, total - added

    # ---------------------------------------------------------------- claims and leases

    async def claim(self, stage: str, owner: str, now: float, lease_s: float,
                    limit: int = 1, *, only: str | None = None) -> list[VideoRow]:
        st = STAGES[stage]
        check(st.ready, st.running)
        until_sql, until = self._lease_for(now, lease_s)
        where, wparams = claim_only(only), list[Any]()
        if self._audio_local(stage):  # audio this host does not hold is not its to take
            where += " AND (audio_host IS NULL OR audio_host = %s)"
            wparams.append(self.host)
        rows = await self._all(
            f"WITH picked AS (SELECT id FROM videos WHERE state = %s AND next_attempt_at <= %s"
            f"{where} ORDER BY priority DESC, next_attempt_at, seq LIMIT %s "
            f"FOR UPDATE SKIP LOCKED) "
            f"UPDATE videos v SET state = %s, lease_owner = %s, lease_until = {until_sql}, "
            f"updated_at = %s, lease_token = v.lease_token + 1 FROM picked "
            f"WHERE v.id = picked.id RETURNING v.seq, "
            + ", ".join(f"v.{c}" for c in _FIELDS),
            (st.ready.value, now, *wparams, limit, st.running.value, owner, until, now))
        rows.sort(key=lambda r: (-r[1 + _FIELDS.index("priority")],
                                 r[1 + _FIELDS.index("next_attempt_at")], r[0]))
        return [_row(r[1:]) for r in rows]

    def _audio_local(self, stage: str) -> bool:
        return stage in LOCAL_AUDIO_STAGES and not self.shared_files and self.host is not None

    async def next_ready_at(self, stage: str, *, only: str | None = None) -> float | None:
        sql = "SELECT min(next_attempt_at) FROM videos WHERE state = %s" + claim_only(only)
        params: list[Any] = [STAGES[stage].ready.value]
        if self._audio_local(stage):
            sql += " AND (audio_host IS NULL OR audio_host = %s)"
            params.append(self.host)
        row = await self._one(sql, params)
        return None if row is None or row[0] is None else float(row[0])

    async def renew(self, video_id: str, owner: str, state: str, until: float, *,
                    token: int | None = None) -> bool:
        guard, gparams = lease_guard(video_id, state, owner, token, mark="%s")
        until_sql, value = self._renewed_until(until)
        async with self._tx() as conn:
            cur = await conn.execute(f"UPDATE videos SET lease_until = {until_sql} WHERE {guard}",
                                     (value, *gparams))
            return bool(cur.rowcount == 1)

    async def renew_many(self, leases: Iterable[tuple[str, str, int]], owner: str,
                         until: float) -> int:
        leases = list(leases)
        if not leases:
            return 0
        until_sql, value = self._renewed_until(until)
        async with self._tx() as conn:
            cur = await conn.execute(
                f"UPDATE videos v SET lease_until = {until_sql} FROM unnest(%s::text[], "
                f"%s::text[], %s::bigint[]) AS l(id, state, token) WHERE v.id = l.id AND "
                f"v.state = l.state AND v.lease_token = l.token AND v.lease_owner = %s",
                (value, [x[0] for x in leases], [x[1] for x in leases],
                 [x[2] for x in leases], owner))
            return int(cur.rowcount)

    async def holds(self, video_id: str, state: str, token: int) -> bool:
        return await self._one("SELECT 1 FROM videos WHERE id = %s AND state = %s AND "
                               "lease_token = %s", (video_id, state, token)) is not None

    async def _move(self, video_id: str, owner: str | None, old: str, new: str, sets: str,
                    params: Sequence[Any], now: float, event: Event | None,
                    token: int | None, search: SearchDocs | None = None) -> None:
        check(old, new)
        guard, gparams = lease_guard(video_id, old, owner, token, mark="%s")
        async with self._tx() as conn:
            cur = await conn.execute(
                f"UPDATE videos SET state = %s, updated_at = %s{sets} WHERE {guard}",
                (str(new), now, *params, *gparams))
            if cur.rowcount != 1:
                raise InvalidTransition(f"video {video_id}: {old} -> {new} matched no row "
                                        f"(state or lease changed underneath)",
                                        lease_lost=token is not None)
            if event is not None:
                await self._event(conn, now, event.event, video_id, event.stage, event.kind,
                                  event.message)
            if search is not None:
                await self._write_search(conn, video_id, search)
            await _notify(conn, str(new))

    async def complete(self, video_id: str, owner: str, old: str, new: str, now: float,
                       fields: Mapping[str, Any] | None = None,
                       info: Mapping[str, Any] | None = None, event: Event | None = None,
                       token: int | None = None, search: SearchDocs | None = None) -> None:
        fields = outcome_fields(fields)
        sets = ", lease_owner = NULL, lease_until = NULL, attempts = 0, next_attempt_at = 0, " \
               "error_kind = NULL, error = NULL, failed_stage = NULL"
        params: list[Any] = []
        for k, v in fields.items():
            sets += f", {k} = %s"
            params.append(v)
        if fields.get("audio_path") and self.host is not None:  # the audio is on this host
            sets += ", audio_host = %s"
            params.append(self.host)
        if info:
            sets += ", info = ytpiped_merge_patch(info, %s::jsonb)"
            params.append(json.dumps(info))
        await self._move(video_id, owner, old, new, sets, params, now, event, token, search)

    async def release(self, video_id: str, owner: str | None, old: str, now: float, *,
                      next_attempt_at: float = 0.0, spend_attempt: bool = False,
                      kind: str | None = None, error: str | None = None,
                      event: Event | None = None, token: int | None = None) -> None:
        sets = ", lease_owner = NULL, lease_until = NULL, next_attempt_at = %s"
        params: list[Any] = [next_attempt_at]
        if spend_attempt:
            sets += ", attempts = attempts + 1"
        if kind is not None:
            sets += ", error_kind = %s, error = %s"
            params += [kind, error]
        await self._move(video_id, owner, old, PREVIOUS[State(old)], sets, params, now, event,
                         token)

    async def fail(self, video_id: str, owner: str | None, old: str, now: float, *, kind: str,
                   error: str, spend_attempt: bool = True, event: Event | None = None,
                   token: int | None = None) -> None:
        sets = (", lease_owner = NULL, lease_until = NULL, failed_stage = %s, error_kind = %s, "
                "error = %s" + (", attempts = attempts + 1" if spend_attempt else ""))
        await self._move(video_id, owner, old, State.FAILED,
                         sets, [STAGE_OF[State(old)], kind, error], now, event, token)

    async def reap(self, now: float, *, owner_not: str | None = None,
                   all_leases: bool = False, owner_prefix: str | None = None) -> int:
        params: list[Any] = []
        if all_leases:
            cond = "true"
        elif self.db_clock:
            cond = f"lease_until < {DB_NOW}"
        else:
            cond, params = "lease_until < %s", [now]
        if owner_not is not None:
            cond += " AND (lease_owner IS NULL OR lease_owner <> %s)"
            params.append(owner_not)
        if owner_prefix is not None:
            cond += " AND starts_with(lease_owner, %s)"
            params.append(owner_prefix)
        async with self._tx() as conn:
            cur = await conn.execute(
                f"UPDATE videos SET state = CASE state {_REAP_CASE} END, lease_owner = NULL, "
                f"lease_until = NULL, updated_at = %s WHERE state IN ({_RUNNING}) AND {cond}",
                (now, *params))
            if cur.rowcount:
                await _notify(conn, "*")
            return int(cur.rowcount)

    # ---------------------------------------------------------------- operator actions

    async def retry_failed(self, now: float, *, stage: str | None = None,
                           kind: str | None = None, ids: Sequence[str] = ()) -> int:
        where = ["state = 'failed'"]
        params: list[Any] = []
        if stage:
            where.append("failed_stage = %s")
            params.append(stage)
        if kind:
            where.append("error_kind = %s")
            params.append(kind)
        if ids:
            where.append("id = ANY(%s)")
            params.append(list(ids))
        case = " ".join(f"WHEN '{name}' THEN '{st.ready.value}'" for name, st in STAGES.items())
        for st in STAGES.values():
            check(State.FAILED, st.ready)
        async with self._tx() as conn:
            cur = await conn.execute(
                f"UPDATE videos SET state = CASE failed_stage {case} ELSE 'queued' END, "
                "attempts = 0, next_attempt_at = 0, failed_stage = NULL, error_kind = NULL, "
                f"error = NULL, updated_at = %s WHERE {' AND '.join(where)}", (now, *params))
            if cur.rowcount:
                await _notify(conn, "*")
            return int(cur.rowcount)

    async def retry_skipped(self, now: float, *, ids: Sequence[str] = ()) -> int:
        check(State.SKIPPED, State.QUEUED)
        where, params = "state = 'skipped'", list[Any]()
        if ids:
            where += " AND id = ANY(%s)"
            params.append(list(ids))
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE videos SET state = 'queued', attempts = 0, next_attempt_at = 0, "
                "info = ytpiped_merge_patch(info, %s::jsonb), updated_at = %s "
                f"WHERE {where}", (json.dumps(UNFILTERED_PATCH), now, *params))
            if cur.rowcount:
                await _notify(conn, "*")
            return int(cur.rowcount)

    async def give_back_attempts(self, spent: Mapping[str, int], kinds: Sequence[str],
                                 now: float, event: Event | None = None) -> int:
        if not spent or not kinds:
            return 0
        check(State.FAILED, State.QUEUED)
        changed = 0
        async with self._tx() as conn:
            for video_id, n in spent.items():
                cur = await conn.execute(
                    "UPDATE videos SET attempts = greatest(0, attempts - %s), updated_at = %s, "
                    "state = 'queued', failed_stage = NULL, next_attempt_at = "
                    "CASE state WHEN 'failed' THEN 0 ELSE next_attempt_at END "
                    "WHERE id = %s AND error_kind = ANY(%s) AND (state = 'queued' OR "
                    "(state = 'failed' AND failed_stage = 'download'))",
                    (int(n), now, video_id, list(kinds)))
                if cur.rowcount == 1:
                    changed += 1
                    if event is not None:
                        await self._event(conn, now, event.event, video_id, event.stage,
                                          event.kind, event.message)
            if changed:
                await _notify(conn, State.QUEUED.value)
        return changed

    async def remine(self, reasons: Mapping[str, str], now: float) -> int:
        check(State.DONE, State.TRANSCRIBED)
        moved = 0
        async with self._tx() as conn:
            for video_id, reason in reasons.items():
                cur = await conn.execute(
                    "UPDATE videos SET state = %s, attempts = 0, next_attempt_at = 0, "
                    "updated_at = %s WHERE id = %s AND state = %s",
                    (State.TRANSCRIBED.value, now, video_id, State.DONE.value))
                if cur.rowcount == 1:
                    moved += 1
                    await self._event(conn, now, "remine", video_id, "mine", None, reason)
            if moved:
                await _notify(conn, State.TRANSCRIBED.value)
        return moved

    async def retranscribe(self, targets: Mapping[str, str], now: float,
                           model: str | None = None) -> int:
        for target in set(targets.values()):
            check(State.DONE, target)
        mark = json.dumps({"retranscribe": {"model": model, "at": now}})
        moved, woken = 0, set()
        async with self._tx() as conn:
            for video_id, target in targets.items():
                cur = await conn.execute(
                    "UPDATE videos SET state = %s, attempts = 0, next_attempt_at = 0, "
                    "updated_at = %s, info = ytpiped_merge_patch(info, %s::jsonb) "
                    "WHERE id = %s AND state = %s",
                    (target, now, mark, video_id, State.DONE.value))
                if cur.rowcount == 1:
                    moved += 1
                    woken.add(target)
                    await conn.execute("DELETE FROM parts WHERE video_id = %s", (video_id,))
                    await self._event(conn, now, "retranscribe", video_id, "transcribe", None,
                                      retranscribe_message(target, model))
            for target in sorted(woken):
                await _notify(conn, target)
        return moved

    async def relative_audio_paths(self) -> int:
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE videos SET audio_path = 'audio/' || regexp_replace(audio_path, "
                "'^.*/', '') WHERE audio_path LIKE '/%%'")
            return int(cur.rowcount)

    async def check(self) -> str:
        """"ok" when the schema is this version's; else what is wrong."""
        async with self._tx() as conn:
            version = await _version(conn)
        if version != SCHEMA_VERSION:
            return f"schema version {version}, expected {SCHEMA_VERSION} (ytpiped db migrate)"
        return "ok"

    # ---------------------------------------------------------------- reads

    async def get(self, video_id: str) -> VideoRow | None:
        row = await self._one(f"SELECT {_COLUMNS} FROM videos WHERE id = %s", (video_id,))
        return None if row is None else _row(row)

    async def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]:
        sql = f"SELECT {_COLUMNS} FROM videos"
        params: tuple[Any, ...] = ()
        if state:
            sql += " WHERE state = %s"
            params = (state,)
        return [_row(r) for r in await self._all(sql + " ORDER BY seq LIMIT %s",
                                                  (*params, limit))]

    async def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in State}
        for state, n in await self._all("SELECT state, count(*) FROM videos GROUP BY state"):
            out[state] = int(n)
        return out

    async def counts_by_kind(self) -> dict[str, int]:
        return {k: int(n) for k, n in
                await self._all("SELECT kind, count(*) FROM videos GROUP BY kind")}

    async def failures_by_kind(self) -> dict[str, int]:
        return {k or "error": int(n) for k, n in await self._all(
            "SELECT error_kind, count(*) FROM videos WHERE state = 'failed' GROUP BY error_kind")}

    async def recent_failures(self, limit: int = 5) -> list[VideoRow]:
        return [_row(r) for r in await self._all(
            f"SELECT {_COLUMNS} FROM videos WHERE state = 'failed' ORDER BY updated_at DESC, "
            "seq LIMIT %s", (limit,))]

    async def buffer_stats(self) -> tuple[int, int]:
        states = [s.value for s in BUFFER_STATES]
        sql = "SELECT count(*), coalesce(sum(size_bytes), 0) FROM videos WHERE state = ANY(%s)"
        params: list[Any] = [states]
        if not self.shared_files and self.host is not None:  # this host's disk
            sql += " AND audio_host = %s"
            params.append(self.host)
        row = await self._one(sql, params)
        assert row is not None
        return int(row[0]), int(row[1])

    async def remaining_audio_s(self) -> dict[str, tuple[int, float]]:
        return {s: (int(n), float(d or 0.0)) for s, n, d in await self._all(
            "SELECT state, count(*), sum(duration_s) FROM videos GROUP BY state")}

    # ---------------------------------------------------------------- events

    async def record_event(self, now: float, event: str, *, video_id: str | None = None,
                           stage: str | None = None, kind: str | None = None,
                           message: str | None = None) -> None:
        async with self._tx() as conn:
            await self._event(conn, now, event, video_id, stage, kind, message)

    async def event_count(self, stage: str, event: str, since: float) -> int:
        row = await self._one("SELECT count(*) FROM events WHERE stage = %s AND event = %s "
                              "AND at >= %s", (stage, event, since))
        return int(row[0]) if row else 0

    async def event_counts_by_kind(self, event: str) -> dict[str, int]:
        return {k or "error": int(n) for k, n in await self._all(
            "SELECT kind, count(*) FROM events WHERE event = %s GROUP BY kind", (event,))}

    async def events_of(self, video_id: str) -> list[tuple[float, str | None, str, str | None,
                                                          str | None]]:
        return [(float(at), st, ev, kind, msg) for at, st, ev, kind, msg in await self._all(
            "SELECT at, stage, event, kind, message FROM events WHERE video_id = %s ORDER BY id",
            (video_id,))]

    # ---------------------------------------------------------------- parts

    async def load_parts(self, video_id: str, kind: str) -> dict[int, Any]:
        return {int(idx): json.loads(data) for idx, data in await self._all(
            "SELECT idx, data FROM parts WHERE video_id = %s AND kind = %s ORDER BY idx",
            (video_id, kind))}

    async def save_part(self, video_id: str, kind: str, idx: int, data: Any, now: float, *,
                        token: int | None = None) -> None:
        sql = ("INSERT INTO parts (video_id, kind, idx, data, updated_at) SELECT %s, %s, %s, "
               "%s, %s")
        params: list[Any] = [video_id, kind, idx, json.dumps(data), now]
        if token is not None:
            # FOR SHARE: the row cannot be reaped or claimed again until this write is in
            sql += (" WHERE EXISTS (SELECT 1 FROM videos WHERE id = %s AND lease_token = %s "
                    "AND lease_owner IS NOT NULL FOR SHARE)")
            params += [video_id, token]
        sql += (" ON CONFLICT (video_id, kind, idx) DO UPDATE SET data = EXCLUDED.data, "
                "updated_at = EXCLUDED.updated_at")
        async with self._tx() as conn:
            cur = await conn.execute(sql, params)
            if cur.rowcount != 1:
                raise InvalidTransition(f"video {video_id}: {kind} {idx} not saved: the run's "
                                        "lease was lost", lease_lost=True)

    async def clear_parts(self, video_id: str, kind: str, *, token: int | None = None) -> None:
        async with self._tx() as conn:
            if token is not None:
                cur = await conn.execute(
                    "SELECT 1 FROM videos WHERE id = %s AND lease_token = %s AND lease_owner IS "
                    "NOT NULL FOR SHARE", (video_id, token))
                if await cur.fetchone() is None:
                    raise InvalidTransition(f"video {video_id}: {kind} parts not cleared: the "
                                            "run's lease was lost", lease_lost=True)
            await conn.execute("DELETE FROM parts WHERE video_id = %s AND kind = %s",
                               (video_id, kind))

    # ---------------------------------------------------------------- samples and state

    async def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        if not samples:
            return
        async with self._tx() as conn:
            cur = conn.cursor()
            await cur.executemany(
                "INSERT INTO perf_samples (at, device_kind, model, compute_type, batch_size, "
                "audio_s, elapsed_s) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(x.at, x.device_kind, x.model, x.compute_type, x.batch_size, x.audio_s,
                  x.elapsed_s) for x in samples])

    async def perf_samples(self, limit: int = 20_000) -> list[PerfSample]:
        return [PerfSample(*r) for r in await self._all(
            "SELECT device_kind, model, compute_type, batch_size, audio_s, elapsed_s, at FROM "
            "(SELECT * FROM perf_samples ORDER BY id DESC LIMIT %s) s ORDER BY id", (limit,))]

    async def set_state(self, key: str, value: Any, now: float) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO daemon_state (key, value, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
                "updated_at = EXCLUDED.updated_at", (key, json.dumps(value), now))

    async def update_state(self, key: str, change: Callable[[Any], Any], now: float) -> Any:
        async with self._tx() as conn:
            await conn.execute("INSERT INTO daemon_state (key, value, updated_at) VALUES "
                               "(%s, 'null', %s) ON CONFLICT (key) DO NOTHING", (key, now))
            cur = await conn.execute("SELECT value FROM daemon_state WHERE key = %s FOR UPDATE",
                                     (key,))
            row = await cur.fetchone()
            value = change(None if row is None else json.loads(row[0]))
            await conn.execute("UPDATE daemon_state SET value = %s, updated_at = %s "
                               "WHERE key = %s", (json.dumps(value), now, key))
        return value

    async def get_state(self, key: str) -> tuple[Any, float] | None:
        row = await self._one("SELECT value, updated_at FROM daemon_state WHERE key = %s", (key,))
        return None if row is None else (json.loads(row[0]), float(row[1]))

    async def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]:
        return {k: (json.loads(v), float(at)) for k, v, at in await self._all(
            "SELECT key, value, updated_at FROM daemon_state WHERE starts_with(key, %s)",
            (prefix,))}


    # ---------------------------------------------------------------- several hosts

    async def _event(self, conn: Any, now: float, event: str, video_id: str | None,
                     stage: str | None, kind: str | None, message: str | None) -> None:
        await conn.execute("INSERT INTO events (at, video_id, stage, event, kind, message, "
                           "host) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                           (now, video_id, stage, event, kind, message, self.host))

    async def heartbeat(self, host: str, value: Mapping[str, Any]) -> None:
        """Publish `host:HOST` (what `status --hosts` shows), timed by the database's clock,
        which tells every host whether this one is alive."""
        async with self._tx() as conn:
            await conn.execute(
                f"INSERT INTO daemon_state (key, value, updated_at) VALUES (%s, %s, {DB_NOW}) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
                "updated_at = EXCLUDED.updated_at", (f"host:{host}", json.dumps(value)))

    async def hosts(self) -> dict[str, tuple[Any, float, float]]:
        """host -> (its last heartbeat, when, seconds since by the database's clock)."""
        return {k.split(":", 1)[1]: (json.loads(v), float(at), float(age))
                for k, v, at, age in await self._all(
                    f"SELECT key, value, updated_at, {DB_NOW} - updated_at FROM daemon_state "
                    "WHERE starts_with(key, 'host:')")}

    async def requeue_lost_audio(self, now: float, silent_s: float) -> list[str]:
        """Unfinished videos resting with their files on a host silent for `silent_s` (by the
        database's clock; no heartbeat at all counts as silent) go back to queued, to be
        downloaded again by whichever host claims them; returns their ids."""
        for state in _AUDIO_RESTING:
            check(state, State.QUEUED)
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE videos v SET state = 'queued', audio_host = NULL, audio_path = NULL, "
                "next_attempt_at = 0, updated_at = %s WHERE state = ANY(%s) AND audio_host IS "
                "NOT NULL AND audio_host IS DISTINCT FROM %s AND NOT EXISTS (SELECT 1 FROM "
                "daemon_state h WHERE h.key = 'host:' || v.audio_host AND "
                f"h.updated_at > {DB_NOW} - %s) RETURNING v.id, v.audio_host",
                (now, list(_AUDIO_RESTING), self.host, silent_s))
            lost = list(await cur.fetchall())
            for vid, host in lost:
                await self._event(conn, now, "audio_lost", vid, "download", "host_silent",
                                  f"host {host} silent for {silent_s:.0f} s: download again")
            if lost:
                await _notify(conn, State.QUEUED.value)
        return [str(vid) for vid, _ in lost]

    async def listen(self, on_state: Callable[[str], None], *, retry_s: float = 5.0) -> None:
        """Call `on_state(state)` for every NOTIFY of work reaching `state` (any host's,
        "*" for any state) until cancelled; a lost connection is made again after
        `retry_s` (meanwhile the workers' poll finds the work)."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url,
                                                                 autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    on_state("*")  # whatever was notified while we were not listening
                    async for note in conn.notifies():
                        on_state(note.payload)
            except psycopg.OperationalError:
                await asyncio.sleep(retry_s)


async def _notify(conn: Any, state: str) -> None:
    """Wake every host's workers for `state` when this transaction commits."""
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, state))


async def schema_version(url: str) -> int:
    """The schema version of the database at `url` (0: no ytpiped schema yet)."""
    import psycopg

    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=30) as conn:
            return await _version(conn) or 0
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to the PostgreSQL store at {redact(url)} "
                               f"(key 'store.url'): {str(exc).strip()}") from None


async def _version(conn: Any) -> int | None:
    """The schema version, or None before the first migration."""
    cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    cur = await conn.execute("SELECT max(version) FROM schema_version")
    row = await cur.fetchone()
    return None if not row or row[0] is None else int(row[0])

