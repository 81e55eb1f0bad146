"""How many GPU slots to use: a VRAM ceiling, and a hill-climb on measured throughput.
Pure.

Worker processes on one GPU share its compute: past a point another slot only adds
memory, not speed. The VRAM formula (`capacity.compute`: model weights, each process's
CUDA context, the activations of `batch_size` windows) is the ceiling; the number of
*active* slots starts at two (two processes overlap one's CPU-side work with the other's
GPU work, so two nearly always beat one) and follows the measured aggregate audio seconds per second
of the GPU slots, the same climb as the mining pool's: one more slot while a step up
raises throughput by at least `gain` (5 %), back down when it clearly does not (short of
`gain` by two standard errors; a rise too close to call keeps the slot, which costs only
memory: in the simulation noisy runs had dropped a slot that added 9 %); once settled
it holds, then probes one step up again, so a change of load is found.

The dispatcher measures each count from the runs that started after the count was set
and kept the GPU full (`engines.dispatcher._Meter`): each such run is one estimate of the
aggregate speed. A step waits (`enough`) until the measured rise is clearly above or below
`gain` (two standard errors) or until eight runs per slot are in, so a large gain is taken
after a few chunks and a marginal one is not decided on noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class SlotClimb:
    ceiling: int
    active: int = 2
    tput: dict[int, float] = field(default_factory=dict)  # active -> audio s per s
    stderr: dict[int, float] = field(default_factory=dict)  # active -> its standard error
    last_step: int = 0
    settled: bool = False
    hold: int = 0
    reason: str = "starting with two slots; adds one while throughput rises by >= 5 %"


def start(ceiling: int, adaptive: bool = True) -> SlotClimb:
    if not adaptive or ceiling <= 1:
        why = ("transcribe.gpu_slots_adaptive = false: every slot under the VRAM ceiling"
               if not adaptive else "the VRAM ceiling allows one slot")
        return SlotClimb(ceiling, max(0, ceiling), settled=True, hold=-1, reason=why)
    return SlotClimb(ceiling, min(ceiling, 2))


def enough(s: SlotClimb, active: int, mean: float, stderr: float, runs: int, *,
           gain: float = 0.05, z: float = 2.0) -> bool:
    """Whether `runs` estimates at `active` slots (their `mean` and its `stderr`) decide the
    next step: at least two runs per slot (4 at the least); then as soon as the rise over
    one slot fewer is `z` standard errors away from `gain`, or at eight runs per slot."""
    if runs < max(4, 2 * active):
        return False
    below = s.tput.get(active - 1)
    if runs >= 8 * active or s.last_step <= 0 or below is None or below <= 0:
        return True
    se = math.hypot(stderr, s.stderr.get(active - 1, 0.0))
    return abs(mean / below - 1 - gain) >= z * se / below


def step(s: SlotClimb, active: int, throughput: float, *, gain: float = 0.05,
         hold: int = 8, stderr: float = 0.0, z: float = 2.0) -> SlotClimb:
    """The next state after one measurement at `active` slots."""
    if s.hold < 0:  # fixed
        return s
    tput, errs = dict(s.tput), dict(s.stderr)
    old = tput.get(active)
    tput[active] = throughput if old is None else (old + throughput) / 2
    old_se = errs.get(active)
    errs[active] = stderr if old_se is None else math.hypot(old_se, stderr) / 2
    s = replace(s, tput=tput, stderr=errs)
    if active != s.active:
        return s  # measured at another count (changed meanwhile): remembered only
    n = s.active
    below = tput.get(n - 1)
    if s.last_step > 0 and below is not None:
        rise = tput[n] / below - 1 if below > 0 else 1.0
        se = math.hypot(errs[n], errs.get(n - 1, 0.0)) / below if below > 0 else 0.0
        if rise < gain and gain - rise < z * se:
            return replace(s, settled=True, hold=hold, last_step=0,
                           reason=f"{n} of {s.ceiling}: the last slot gave {rise:+.0%} "
                                  f"throughput, not clearly under {gain:.0%}: kept")
        if rise < gain:
            return replace(s, active=n - 1, last_step=-1, settled=True, hold=hold,
                           reason=f"{n - 1} of {s.ceiling}: a slot more gave {rise:+.0%} "
                                  f"throughput (< {gain:.0%}), so it was dropped")
    if not s.settled and n < s.ceiling:
        return replace(s, active=n + 1, last_step=+1,
                       reason=f"{n + 1} of {s.ceiling}: trying one more slot "
                              f"({tput[n]:.1f} audio s/s at {n})")
    if not s.settled:
        return replace(s, settled=True, hold=hold, last_step=0,
                       reason=f"{n} of {s.ceiling}: every slot the VRAM allows, throughput "
                              f"still rising")
    if s.hold > 0:
        return replace(s, hold=s.hold - 1, last_step=0)
    if n < s.ceiling:  # probe one up again: the load may have changed
        return replace(s, active=n + 1, last_step=+1,
                       reason=f"{n + 1} of {s.ceiling}: probing one more slot")
    return replace(s, hold=hold, last_step=0)


def vram_per_slot_gb(model_gb: float, context_gb: float, batch_size: int,
                     per_item_gb: float) -> float:
    """One slot's VRAM: the weights, the process's CUDA context, the activations of a
    batch of `batch_size` 30-s windows."""
    return model_gb + context_gb + max(1, batch_size) * per_item_gb
