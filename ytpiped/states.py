"""Video states and the one table of allowed transitions (DESIGN.md §2). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ytpiped.errors import InvalidTransition


class State(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    ANALYZING = "analyzing"
    ANALYZED = "analyzed"
    TRANSCRIBING = "transcribing"
    TRANSCRIBED = "transcribed"
    MINING = "mining"
    MINED = "mined"
    EVALUATING = "evaluating"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # left out by a filter (sources.*), with the reason; terminal


@dataclass(frozen=True)
class StageStates:
    """The three states one stage moves a video through."""

    name: str
    ready: State  # resting state the stage claims from
    running: State  # in-progress state while it works
    finished: State  # resting state it hands on


STAGES: dict[str, StageStates] = {
    s.name: s
    for s in (
        StageStates("download", State.QUEUED, State.DOWNLOADING, State.DOWNLOADED),
        StageStates("analyze", State.DOWNLOADED, State.ANALYZING, State.ANALYZED),
        StageStates("transcribe", State.ANALYZED, State.TRANSCRIBING, State.TRANSCRIBED),
        StageStates("mine", State.TRANSCRIBED, State.MINING, State.MINED),
        StageStates("evaluate", State.MINED, State.EVALUATING, State.DONE),
    )
}
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)

#: in-progress state -> the resting state it returns to on retry, lease expiry or shutdown
PREVIOUS: dict[State, State] = {s.running: s.ready for s in STAGES.values()}
#: in-progress state -> its stage name
STAGE_OF: dict[State, str] = {s.running: s.name for s in STAGES.values()}
IN_PROGRESS: frozenset[State] = frozenset(PREVIOUS)
RESTING: frozenset[State] = frozenset(State) - IN_PROGRESS
#: states a video ends in: nothing more happens to it
TERMINAL: frozenset[State] = frozenset({State.DONE, State.FAILED, State.SKIPPED})
#: states a `retry` may send a failed video back to
RETRY_TARGETS: frozenset[State] = frozenset(s.ready for s in STAGES.values())
#: states `ytpiped retranscribe` sends a done video back to (audio kept / downloaded again)
RETRANSCRIBE_TARGETS: frozenset[State] = frozenset({State.ANALYZED, State.QUEUED})


def _table() -> frozenset[tuple[State, State]]:
    edges: set[tuple[State, State]] = set()
    for s in STAGES.values():
        edges.add((s.ready, s.running))  # claim
        edges.add((s.running, s.finished))  # complete
        edges.add((s.running, s.ready))  # retry / lease expiry / shutdown
        edges.add((s.running, State.FAILED))  # failure
    # Extensions of DESIGN.md §2:
    # a playlist/channel row is finished once expanded into video rows
    edges.add((State.DOWNLOADING, State.DONE))
    # a filter left the video out before its audio was downloaded
    edges.add((State.DOWNLOADING, State.SKIPPED))
    # `ytpiped retry` queues a skipped video anyway (its filters no longer apply to it)
    edges.add((State.SKIPPED, State.QUEUED))
    # the video's own subtitles are its transcript (transcribe.youtube_subtitles)
    edges.add((State.DOWNLOADING, State.TRANSCRIBED))
    # `ytpiped retry` sends a failed video back to the resting state before its failed stage
    edges.update((State.FAILED, target) for target in RETRY_TARGETS)
    # re-mining what a new prompt version made stale
    edges.add((State.DONE, State.TRANSCRIBED))
    # `ytpiped retranscribe`: back to transcription with the audio kept, or to the
    # download when it was deleted (or never fetched: the video's subtitles were used)
    edges.update((State.DONE, back) for back in RETRANSCRIBE_TARGETS)
    # several hosts, no shared files: the host holding a video's audio (and the outputs
    # made from it) is gone, so another host downloads it again
    edges.update((rest, State.QUEUED) for rest in (State.DOWNLOADED, State.ANALYZED,
                                                   State.TRANSCRIBED, State.MINED))
    return frozenset(edges)


TRANSITIONS: frozenset[tuple[State, State]] = _table()


def allowed(old: State | str, new: State | str) -> bool:
    return (State(old), State(new)) in TRANSITIONS


def check(old: State | str, new: State | str) -> None:
    """Raise InvalidTransition unless `old -> new` is in the table."""
    if not allowed(old, new):
        raise InvalidTransition(
            f"transition {State(old).value} -> {State(new).value} is not allowed")
