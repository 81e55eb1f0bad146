from __future__ import annotations

import itertools

import pytest

from ytpiped.errors import InvalidTransition
from ytpiped.states import (
    IN_PROGRESS,
    PREVIOUS,
    RESTING,
    STAGES,
    TERMINAL,
    TRANSITIONS,
    State,
    check,
)

PIPELINE = ["queued", "downloading", "downloaded", "analyzing", "analyzed", "transcribing",
            "transcribed", "mining", "mined", "evaluating", "done"]


def expected_edges() -> set[tuple[str, str]]:
    edges = set(itertools.pairwise(PIPELINE))  # forward path
    for running in PIPELINE[1:-1:2]:  # downloading, analyzing, transcribing, mining, evaluating
        prev = PIPELINE[PIPELINE.index(running) - 1]
        edges.add((running, "failed"))
        edges.add((running, prev))
    edges.add(("downloading", "done"))  # playlist/channel rows
    for target in ("queued", "downloaded", "analyzed", "transcribed", "mined"):
        edges.add(("failed", target))  # `ytpiped retry`
    edges.add(("done", "transcribed"))  # re-mining
    edges.update({("done", "analyzed"), ("done", "queued")})  # retranscribe (audio kept/gone)
    edges.add(("downloading", "skipped"))  # a filter left the video out
    edges.add(("skipped", "queued"))  # `ytpiped retry` queues it anyway
    edges.add(("downloading", "transcribed"))  # its own subtitles are the transcript
    # the host holding the audio and outputs is gone
    edges.update({("downloaded", "queued"), ("analyzed", "queued"), ("transcribed", "queued"),
                  ("mined", "queued")})
    return edges


def test_table_is_exactly_the_documented_graph() -> None:
    assert {(a.value, b.value) for a, b in TRANSITIONS} == expected_edges()


@pytest.mark.parametrize("old,new", sorted(expected_edges()))
def test_allowed_transition(old: str, new: str) -> None:
    check(old, new)


@pytest.mark.parametrize(
    "old,new",
    sorted(set(itertools.product([s.value for s in State], repeat=2)) - expected_edges()),
)
def test_forbidden_transition_raises(old: str, new: str) -> None:
    with pytest.raises(InvalidTransition, match=f"{old} -> {new}"):
        check(old, new)


def test_resting_and_in_progress_partition_states() -> None:
    assert set(State) == IN_PROGRESS | RESTING
    assert not IN_PROGRESS & RESTING
    assert {s.value for s in IN_PROGRESS} == {"downloading", "analyzing", "transcribing",
                                              "mining", "evaluating"}
    for running, rest in PREVIOUS.items():
        assert rest in RESTING and running in IN_PROGRESS
    assert [s.name for s in STAGES.values()] == ["download", "analyze", "transcribe", "mine",
                                                  "evaluate"]


def test_skipped_is_terminal_and_left_only_by_retry() -> None:
    assert State.SKIPPED in RESTING and State.SKIPPED in TERMINAL
    assert {new for old, new in TRANSITIONS if old == State.SKIPPED} == {State.QUEUED}
