"""SQLite store: every SQL statement of ytpiped lives in this package.

One `SqliteDB` owns one connection and must be used from one thread (the daemon's
`SqliteStore` gives it a dedicated thread; CLI commands use it directly). Every state
change is a guarded `UPDATE … WHERE id=? AND state=?` checked against states.TRANSITIONS;
zero rows changed raises InvalidTransition.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ytpiped import paths
from ytpiped.errors import InvalidTransition, YtpipedError
from ytpiped.states import IN_PROGRESS, PREVIOUS, STAGE_OF, STAGES, State, check
from ytpiped.store.model import (
    BUFFER_STATES,
    UNFILTERED_PATCH,
    Event,
    PerfSample,
    StoreNotReady,
    VideoRow,
    claim_only,
    lease_guard,
    outcome_fields,
    retranscribe_message,
)
from ytpiped.store.schema import migrate
from ytpiped.store.search import SearchDocs, pairs_text
from ytpiped.store.sqlite_search import SqliteSearch

ADD_BATCH = 50_000


#: SQLite's primary result codes for a damaged file and for a file that is not a database
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


class DatabaseCorrupt(YtpipedError):
    """The database file is damaged or is not a SQLite database at all."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"{path} is damaged ({detail}): stop the daemon and restore a backup made with "
            f"`ytpiped db backup` (copy it to {path}, see README, Backups), or run "
            "`ytpiped db check` to list the problems")


def is_corrupt(exc: BaseException) -> bool:
    """True for SQLite's "database disk image is malformed" and "file is not a database"."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (isinstance(exc, sqlite3.DatabaseError) and isinstance(code, int)
            and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB))


@contextlib.contextmanager
def corruption_named(path: Path) -> Iterator[None]:
    """Turn SQLite's corruption errors into DatabaseCorrupt naming the file and the fix."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if is_corrupt(exc):
            raise DatabaseCorrupt(path, str(exc)) from None
        raise


_COLUMNS = ", ".join(VideoRow.__dataclass_fields__)


def _row(r: sqlite3.Row | tuple[Any, ...]) -> VideoRow:
    values = list(r)
    values[18] = json.loads(values[18] or "{}")
    return VideoRow(*values)


def connect(path: Path, *, readonly: bool = False, timeout_s: float = 30.0) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s,
                               isolation_level=None)
    else:
        conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        # the search indexes' term pairs (schema 7) are computed, never stored: their
        # view and triggers call this on every connection that reads or writes them
        conn.create_function("ytpiped_pairs", -1, pairs_text, deterministic=True)
        conn.execute("PRAGMA trusted_schema=ON")  # so that schema code may call it
        if not readonly:
            _set_wal(conn, timeout_s)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switching to WAL takes an exclusive lock and SQLite does not call the busy handler
    for it: retry while another process is creating the same database."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(0.2, delay * 2)


class SqliteDB(SqliteSearch):
    """Synchronous store over one connection (autocommit; explicit BEGIN IMMEDIATE); search
    and the listings are in SqliteSearch (store/sqlite_search.py)."""

    def __init__(self, path: Path, *, readonly: bool = False, now: float = 0.0) -> None:
        self.path = path
        self.readonly = readonly
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._closed = True  # until the connection exists
        with corruption_named(path):
            self.conn = connect(path, readonly=readonly)
            self._closed = False
            try:
                if not readonly:
                    migrate(self.conn, now)
                elif not self.ready():
                    raise StoreNotReady(f"{path}: database is being created")
            except BaseException:
                self.close()
                raise

    def ready(self) -> bool:
        """True once the schema exists (a reader can race the first writer's migration)."""
        try:
            row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        except sqlite3.OperationalError:
            return False
        return bool(row[0])

    def close(self) -> None:
        self.conn.close()
        self._closed = True

    def __enter__(self) -> SqliteDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):  # as an unclosed file does
            warnings.warn(f"SqliteDB of {self.path} was not closed", ResourceWarning,
                          stacklevel=2)
            self.conn.close()

    def _tx(self) -> _Tx:
        return _Tx(self.conn)

    @staticmethod
    def _video_row(r: sqlite3.Row | tuple[Any, ...]) -> VideoRow:
        return _row(r)

    # ------------------------------------------------------------------ adding

    def add_videos(self, videos: Iterable[tuple[str, str, str]], now: float,
                   parent_id: str | None = None, priority: int = 0) -> tuple[int, int]:
        """Insert new rows, ignoring ids already present -> (added, duplicate)."""
        added = dup = 0
        batch: list[tuple[Any, ...]] = []

        def flush() -> None:
            nonlocal added, dup
            with self._tx():
                before = self.conn.total_changes
                self.conn.executemany(
                    "INSERT OR IGNORE INTO videos (id, url, kind, parent_id, created_at, "
                    "updated_at, priority) VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
                n = self.conn.total_changes - before
                if priority:  # ids already queued move up (never down) to this priority
                    self.conn.executemany(
                        "UPDATE videos SET priority = ? WHERE id = ? AND priority < ?",
                        [(priority, row[0], priority) for row in batch])
            added += n
            dup += len(batch) - n
            batch.clear()

        # sorted keys insert into the primary-key B-tree far faster than random order
        for vid, url, kind in sorted(videos):
            batch.append((vid, url, kind, parent_id, now, now, priority))
            if len(batch) >= ADD_BATCH:
                flush()
        if batch:
            flush()
        return added, dup

    # ------------------------------------------------------------------ claims and leases

    def claim(self, stage: str, owner: str, now: float, lease_s: float,
              limit: int = 1, *, only: str | None = None) -> list[VideoRow]:
        st = STAGES[stage]
        check(st.ready, st.running)
        where = claim_only(only)
        with self._tx():
            rows = self.conn.execute(
                f"UPDATE videos SET state = ?, lease_owner = ?, lease_until = ?, updated_at = ?, "
                f"lease_token = lease_token + 1 WHERE id IN (SELECT id FROM videos WHERE "
                f"state = ? AND next_attempt_at <= ?{where} ORDER BY priority DESC, "
                f"next_attempt_at, rowid LIMIT ?) "
                f"AND state = ? RETURNING {_COLUMNS}",
                (st.running, owner, now + lease_s, now, st.ready, now, limit, st.ready),
            ).fetchall()
        return [_row(r) for r in rows]

    def next_ready_at(self, stage: str, *, only: str | None = None) -> float | None:
        """Earliest next_attempt_at among rows this stage could claim (of class `only`)."""
        row = self.conn.execute(
            f"SELECT min(next_attempt_at) FROM videos WHERE state = ?{claim_only(only)}",
            (STAGES[stage].ready,)).fetchone()
        return None if row[0] is None else float(row[0])

    def renew(self, video_id: str, owner: str, state: str, until: float, *,
              token: int | None = None) -> bool:
        """Extend a lease; False when the row is no longer this run's (reaped, re-claimed)."""
        guard, gparams = lease_guard(video_id, state, owner, token)
        cur = self.conn.execute(f"UPDATE videos SET lease_until = ? WHERE {guard}",
                                (until, *gparams))
        return cur.rowcount == 1

    def renew_many(self, leases: Iterable[tuple[str, str, int]], owner: str,
                   until: float) -> int:
        """Extend the leases (video_id, state, token) held by live runs of `owner` in one
        transaction (the reaper does this before it reaps, so a process that was suspended
        never reaps its own live work); returns how many were still held."""
        n = 0
        with self._tx():
            for video_id, state, token in leases:
                guard, gparams = lease_guard(video_id, state, owner, token)
                n += self.conn.execute(f"UPDATE videos SET lease_until = ? WHERE {guard}",
                                       (until, *gparams)).rowcount
        return n

    def holds(self, video_id: str, state: str, token: int) -> bool:
        """True while the run holding `token` still owns the row."""
        return self.conn.execute("SELECT 1 FROM videos WHERE id = ? AND state = ? AND "
                                 "lease_token = ?", (video_id, state, token)).fetchone() \
            is not None

    def _move(self, video_id: str, owner: str | None, old: str, new: str, sets: str,
              params: Sequence[Any], now: float, event: Event | None,
              token: int | None = None, search: SearchDocs | None = None,
              refacet: bool = False) -> None:
        check(old, new)
        guard, gparams = lease_guard(video_id, old, owner, token)
        with self._tx():
            cur = self.conn.execute(
                f"UPDATE videos SET state = ?, updated_at = ?{sets} WHERE {guard}",
                (new, now, *params, *gparams))
            if cur.rowcount != 1:
                raise InvalidTransition(f"video {video_id}: {old} -> {new} matched no row "
                                        f"(state or lease changed underneath)",
                                        lease_lost=token is not None)
            if event is not None:
                self.record_event(now, event.event, video_id=video_id, stage=event.stage,
                                  kind=event.kind, message=event.message)
            if refacet:  # the channel or upload date changed: the indexed rows follow
                self._refresh_facets(video_id)
            if search is not None:
                self._write_search(video_id, search)

    def complete(self, video_id: str, owner: str, old: str, new: str, now: float,
                 fields: Mapping[str, Any] | None = None,
                 info: Mapping[str, Any] | None = None, event: Event | None = None,
                 token: int | None = None, search: SearchDocs | None = None) -> None:
        """Finish a stage: move to `new`, store outcome fields, merge `info`, reset attempts,
        and replace what the search indexes hold of the video with `search` (all in one
        transaction). With `token`, only the run that holds that fencing token may finish
        it."""
        fields = outcome_fields(fields)
        sets = ", lease_owner = NULL, lease_until = NULL, attempts = 0, next_attempt_at = 0, " \
               "error_kind = NULL, error = NULL, failed_stage = NULL"
        params: list[Any] = []
        for k, v in fields.items():
            sets += f", {k} = ?"
            params.append(v)
        if info:
            sets += ", info = json_patch(info, ?)"
            params.append(json.dumps(info))
        self._move(video_id, owner, old, new, sets, params, now, event, token, search,
                   refacet=bool(fields.keys() & {"channel", "upload_date"}))

    def release(self, video_id: str, owner: str | None, old: str, now: float, *,
                next_attempt_at: float = 0.0, spend_attempt: bool = False,
                kind: str | None = None, error: str | None = None,
                event: Event | None = None, token: int | None = None) -> None:
        """Return an in-progress row to its previous resting state (retry, shutdown, cooldown)."""
        sets = ", lease_owner = NULL, lease_until = NULL, next_attempt_at = ?"
        params: list[Any] = [next_attempt_at]
        if spend_attempt:
            sets += ", attempts = attempts + 1"
        if kind is not None:
            sets += ", error_kind = ?, error = ?"
            params += [kind, error]
        self._move(video_id, owner, old, PREVIOUS[State(old)], sets, params, now, event, token)

    def fail(self, video_id: str, owner: str | None, old: str, now: float, *, kind: str,
             error: str, spend_attempt: bool = True, event: Event | None = None,
             token: int | None = None) -> None:
        sets = (", lease_owner = NULL, lease_until = NULL, failed_stage = ?, error_kind = ?, "
                "error = ?" + (", attempts = attempts + 1" if spend_attempt else ""))
        self._move(video_id, owner, old, State.FAILED, sets,
                   [STAGE_OF[State(old)], kind, error], now, event, token)

    def reap(self, now: float, *, owner_not: str | None = None, all_leases: bool = False,
             owner_prefix: str | None = None) -> int:
        """Return in-progress rows whose lease expired (or, with all_leases, every row not
        leased by `owner_not`) to their previous resting state, spending no attempt; with
        `owner_prefix`, only rows whose lease owner starts with it."""
        case = " ".join(f"WHEN '{run.value}' THEN '{rest.value}'" for run, rest in PREVIOUS.items())
        states = ", ".join(f"'{s.value}'" for s in IN_PROGRESS)
        cond = "lease_until < ?" if not all_leases else "1"
        params: list[Any] = [now] if not all_leases else []
        if owner_not is not None:
            cond += " AND (lease_owner IS NULL OR lease_owner != ?)"
            params.append(owner_not)
        if owner_prefix is not None:
            cond += " AND substr(lease_owner, 1, ?) = ?"
            params += [len(owner_prefix), owner_prefix]
        with self._tx():
            cur = self.conn.execute(
                f"UPDATE videos SET state = CASE state {case} END, lease_owner = NULL, "
                f"lease_until = NULL, updated_at = ? WHERE state IN ({states}) AND {cond}",
                (now, *params))
        return cur.rowcount

    # ------------------------------------------------------------------ operator actions

    def retry_failed(self, now: float, *, stage: str | None = None, kind: str | None = None,
                     ids: Sequence[str] = ()) -> int:
        """Send failed videos back to the resting state before their failed stage."""
        where = ["state = 'failed'"]
        params: list[Any] = []
        if stage:
            where.append("failed_stage = ?")
            params.append(stage)
        if kind:
            where.append("error_kind = ?")
            params.append(kind)
        if ids:
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            params += list(ids)
        case = " ".join(f"WHEN '{name}' THEN '{st.ready.value}'" for name, st in STAGES.items())
        for st in STAGES.values():
            check(State.FAILED, st.ready)
        with self._tx():
            cur = self.conn.execute(
                f"UPDATE videos SET state = CASE failed_stage {case} ELSE 'queued' END, "
                "attempts = 0, next_attempt_at = 0, failed_stage = NULL, error_kind = NULL, "
                f"error = NULL, updated_at = ? WHERE {' AND '.join(where)}", (now, *params))
        return cur.rowcount

    def retry_skipped(self, now: float, *, ids: Sequence[str] = ()) -> int:
        """Queue skipped videos (those of `ids`, or all) anyway, their filters bypassed."""
        check(State.SKIPPED, State.QUEUED)
        where, params = "state = 'skipped'", list[Any]()
        if ids:
            where += f" AND id IN ({', '.join('?' * len(ids))})"
            params += list(ids)
        with self._tx():
            cur = self.conn.execute(
                "UPDATE videos SET state = 'queued', attempts = 0, next_attempt_at = 0, "
                f"info = json_patch(info, ?), updated_at = ? WHERE {where}",
                (json.dumps(UNFILTERED_PATCH), now, *params))
        return cur.rowcount

    def give_back_attempts(self, spent: Mapping[str, int], kinds: Sequence[str], now: float,
                           event: Event | None = None) -> int:
        """Return the attempts that failures of one of `kinds` spent (video id -> count),
        e.g. when the download circuit breaker finds they were not the videos' fault. Only
        rows resting after such a failure change: queued ones keep their place with fewer
        attempts spent; ones that failed in the download stage with one of `kinds` go back
        to queued. Rows in progress or moved on are left alone. Returns the rows changed."""
        if not spent or not kinds:
            return 0
        check(State.FAILED, State.QUEUED)
        marks = ", ".join("?" * len(kinds))
        changed = 0
        with self._tx():
            for video_id, n in spent.items():
                cur = self.conn.execute(
                    "UPDATE videos SET attempts = max(0, attempts - ?), updated_at = ?, "
                    "state = 'queued', failed_stage = NULL, next_attempt_at = "
                    "CASE state WHEN 'failed' THEN 0 ELSE next_attempt_at END "
                    f"WHERE id = ? AND error_kind IN ({marks}) AND (state = 'queued' OR "
                    "(state = 'failed' AND failed_stage = 'download'))",
                    (int(n), now, video_id, *kinds))
                if cur.rowcount == 1:
                    changed += 1
                    if event is not None:
                        self.record_event(now, event.event, video_id=video_id,
                                          stage=event.stage, kind=event.kind,
                                          message=event.message)
        return changed

    def relative_audio_paths(self) -> int:
        """Store audio paths relative to the data dir: an absolute one written by an older
        version (or before the data dir moved) becomes `audio/<file name>`; -> rows changed."""
        rows = self.conn.execute("SELECT id, audio_path FROM videos WHERE audio_path LIKE '/%'"
                                 ).fetchall()
        with self._tx():
            for vid, path in rows:
                self.conn.execute("UPDATE videos SET audio_path = ? WHERE id = ?",
                                  (f"{paths.AUDIO}/{Path(path).name}", vid))
        return len(rows)

    def check(self) -> str:
        """SQLite's `PRAGMA quick_check`: "ok", or the first problems it found."""
        rows = [str(r[0]) for r in self.conn.execute("PRAGMA quick_check(5)")]
        return "; ".join(rows) or "ok"

    def remine(self, reasons: Mapping[str, str], now: float) -> int:
        """Send done videos back to `transcribed` (mine and evaluate run again), recording
        each one's reason as a `remine` event. Rows no longer done are left alone."""
        check(State.DONE, State.TRANSCRIBED)
        moved = 0
        with self._tx():
            for video_id, reason in reasons.items():
                cur = self.conn.execute(
                    "UPDATE videos SET state = ?, attempts = 0, next_attempt_at = 0, "
                    "updated_at = ? WHERE id = ? AND state = ?",
                    (State.TRANSCRIBED.value, now, video_id, State.DONE.value))
                if cur.rowcount == 1:
                    moved += 1
                    self.record_event(now, "remine", video_id=video_id, stage="mine",
                                      message=reason)
        return moved

    def retranscribe(self, targets: Mapping[str, str], now: float,
                     model: str | None = None) -> int:
        """Send done videos back through transcription: each to the state `targets` names
        (`analyzed`: its audio was kept; `queued`: it is downloaded again), with every part
        (chunks, windows, summary) of the old transcript cleared and `info.retranscribe`
        set ({"model": model or null, "at": now}; the transcribe stage reads the model, the
        download stage skips the subtitle shortcut). Rows no longer done are left alone."""
        for target in set(targets.values()):
            check(State.DONE, target)
        mark = json.dumps({"retranscribe": {"model": model, "at": now}})
        moved = 0
        with self._tx():
            for video_id, target in targets.items():
                cur = self.conn.execute(
                    "UPDATE videos SET state = ?, attempts = 0, next_attempt_at = 0, "
                    "updated_at = ?, info = json_patch(info, ?) WHERE id = ? AND state = ?",
                    (target, now, mark, video_id, State.DONE.value))
                if cur.rowcount == 1:
                    moved += 1
                    self.conn.execute("DELETE FROM parts WHERE video_id = ?", (video_id,))
                    self.record_event(now, "retranscribe", video_id=video_id,
                                      stage="transcribe",
                                      message=retranscribe_message(target, model))
        return moved

    # ------------------------------------------------------------------ reads

    def get(self, video_id: str) -> VideoRow | None:
        r = self.conn.execute(f"SELECT {_COLUMNS} FROM videos WHERE id = ?",
                              (video_id,)).fetchone()
        return None if r is None else _row(r)

    def videos(self, state: str | None = None, limit: int = 1000) -> list[VideoRow]:
        sql = f"SELECT {_COLUMNS} FROM videos"
        params: tuple[Any, ...] = ()
        if state:
            sql += " WHERE state = ?"
            params = (state,)
        return [_row(r) for r in self.conn.execute(sql + " ORDER BY rowid LIMIT ?",
                                                   (*params, limit))]

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in State}
        for state, n in self.conn.execute("SELECT state, count(*) FROM videos GROUP BY state"):
            out[state] = n
        return out

    def counts_by_kind(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT kind, count(*) FROM videos GROUP BY kind"))

    def failures_by_kind(self) -> dict[str, int]:
        return {k or "error": n for k, n in self.conn.execute(
            "SELECT error_kind, count(*) FROM videos WHERE state = 'failed' GROUP BY error_kind")}

    def recent_failures(self, limit: int = 5) -> list[VideoRow]:
        return [_row(r) for r in self.conn.execute(
            f"SELECT {_COLUMNS} FROM videos WHERE state = 'failed' ORDER BY updated_at DESC "
            "LIMIT ?", (limit,))]

    def buffer_stats(self) -> tuple[int, int]:
        states = ", ".join(f"'{s.value}'" for s in BUFFER_STATES)
        n, size = self.conn.execute(
            f"SELECT count(*), coalesce(sum(size_bytes), 0) FROM videos WHERE state IN "
            f"({states})").fetchone()
        return int(n), int(size)

    def remaining_audio_s(self) -> dict[str, tuple[int, float]]:
        """state -> (videos, known audio seconds) for work-remaining estimates."""
        return {s: (int(n), float(d or 0.0)) for s, n, d in self.conn.execute(
            "SELECT state, count(*), sum(duration_s) FROM videos GROUP BY state")}

    # ------------------------------------------------------------------ events and rates

    def record_event(self, now: float, event: str, *, video_id: str | None = None,
                     stage: str | None = None, kind: str | None = None,
                     message: str | None = None) -> None:
        self.conn.execute("INSERT INTO events (at, video_id, stage, event, kind, message) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (now, video_id, stage, event, kind, message))

    def event_count(self, stage: str, event: str, since: float) -> int:
        row = self.conn.execute("SELECT count(*) FROM events WHERE stage = ? AND event = ? "
                                "AND at >= ?", (stage, event, since)).fetchone()
        return int(row[0])

    def event_counts_by_kind(self, event: str) -> dict[str, int]:
        return {k or "error": n for k, n in self.conn.execute(
            "SELECT kind, count(*) FROM events WHERE event = ? GROUP BY kind", (event,))}

    def events_of(self, video_id: str) -> list[tuple[float, str | None, str, str | None,
                                                    str | None]]:
        return list(self.conn.execute("SELECT at, stage, event, kind, message FROM events "
                                      "WHERE video_id = ? ORDER BY id", (video_id,)))

    # ------------------------------------------------------------------ parts

    def load_parts(self, video_id: str, kind: str) -> dict[int, Any]:
        return {idx: json.loads(data) for idx, data in self.conn.execute(
            "SELECT idx, data FROM parts WHERE video_id = ? AND kind = ? ORDER BY idx",
            (video_id, kind))}

    def save_part(self, video_id: str, kind: str, idx: int, data: Any, now: float, *,
                  token: int | None = None) -> None:
        """Record one finished part; with `token`, only while that run holds the row
        (raises InvalidTransition(lease_lost=True) otherwise)."""
        sql = ("INSERT OR REPLACE INTO parts (video_id, kind, idx, data, updated_at) "
               "SELECT ?, ?, ?, ?, ?")
        params: list[Any] = [video_id, kind, idx, json.dumps(data), now]
        if token is not None:
            sql += (" WHERE EXISTS (SELECT 1 FROM videos WHERE id = ? AND lease_token = ? "
                    "AND lease_owner IS NOT NULL)")
            params += [video_id, token]
        if self.conn.execute(sql, params).rowcount != 1:
            raise InvalidTransition(f"video {video_id}: {kind} {idx} not saved: the run's "
                                    "lease was lost", lease_lost=True)

    def clear_parts(self, video_id: str, kind: str, *, token: int | None = None) -> None:
        sql, params = "DELETE FROM parts WHERE video_id = ? AND kind = ?", [video_id, kind]
        with self._tx():
            if token is not None and self.conn.execute(
                    "SELECT 1 FROM videos WHERE id = ? AND lease_token = ? AND lease_owner IS "
                    "NOT NULL", (video_id, token)).fetchone() is None:
                raise InvalidTransition(f"video {video_id}: {kind} parts not cleared: the "
                                        "run's lease was lost", lease_lost=True)
            self.conn.execute(sql, params)

    # ------------------------------------------------------------------ samples and state

    def add_perf_samples(self, samples: Sequence[PerfSample]) -> None:
        with self._tx():
            self.conn.executemany(
                "INSERT INTO perf_samples (at, device_kind, model, compute_type, batch_size, "
                "audio_s, elapsed_s) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(x.at, x.device_kind, x.model, x.compute_type, x.batch_size, x.audio_s,
                  x.elapsed_s) for x in samples])

    def perf_samples(self, limit: int = 20_000) -> list[PerfSample]:
        return [PerfSample(*r) for r in self.conn.execute(
            "SELECT device_kind, model, compute_type, batch_size, audio_s, elapsed_s, at FROM "
            "(SELECT * FROM perf_samples ORDER BY id DESC LIMIT ?) ORDER BY id", (limit,))]

    def set_state(self, key: str, value: Any, now: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO daemon_state (key, value, updated_at) "
                          "VALUES (?, ?, ?)", (key, json.dumps(value), now))

    def update_state(self, key: str, change: Callable[[Any], Any], now: float) -> Any:
        with self._tx():
            r = self.conn.execute("SELECT value FROM daemon_state WHERE key = ?",
                                  (key,)).fetchone()
            value = change(None if r is None else json.loads(r[0]))
            self.conn.execute("INSERT OR REPLACE INTO daemon_state (key, value, updated_at) "
                              "VALUES (?, ?, ?)", (key, json.dumps(value), now))
        return value

    def get_state(self, key: str) -> tuple[Any, float] | None:
        r = self.conn.execute("SELECT value, updated_at FROM daemon_state WHERE key = ?",
                              (key,)).fetchone()
        return None if r is None else (json.loads(r[0]), float(r[1]))

    def all_state(self, prefix: str = "") -> dict[str, tuple[Any, float]]:
        return {k: (json.loads(v), float(at)) for k, v, at in self.conn.execute(
            "SELECT key, value, updated_at FROM daemon_state WHERE key LIKE ? || '%'",
            (prefix,))}


def sqlite_version(path: Path) -> int:
    """The schema version of the SQLite database at `path` (0: none yet)."""
    if not path.exists():
        return 0
    conn = connect(path, readonly=True)
    try:
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:  # no such table
        return 0
    finally:
        conn.close()
    return int(row[0] or 0)



class _Tx:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:  # e.g. the disk filled up: leave no transaction open
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        elif self.conn.in_transaction:  # SQLite may have rolled back itself (SQLITE_FULL)
            self.conn.execute("ROLLBACK")

