"""What to do when a transcription job fails (the original design's rules). Pure.

- GPU failure -> retry on the CPU;
- CUDA out of memory -> retry, and that GPU runs one slot fewer from now on;
- CPU failure -> retry on the CPU;
- bad audio -> give up at once (retrying cannot help);
- after `max_attempts` failures -> give up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FailureDecision:
    give_up: bool
    retry_on: str | None  # "cpu" | "gpu" | "any" | None
    lower_gpu_slots: bool = False
    reason: str = ""


def on_failure(device_kind: str, error: str, attempts: int, max_attempts: int,
               have_cpu: bool = True) -> FailureDecision:
    """`error`: "oom" | "crash" | "timeout" | "bad_audio" | other; attempts include this one."""
    if error == "bad_audio":
        return FailureDecision(True, None, reason="the audio cannot be decoded")
    if attempts >= max_attempts:
        return FailureDecision(True, None, lower_gpu_slots=error == "oom",
                               reason=f"gave up after {attempts} attempts")
    if error == "oom":
        return FailureDecision(False, "any", lower_gpu_slots=True,
                               reason="CUDA out of memory: one GPU slot fewer, retry")
    if device_kind == "gpu":
        return FailureDecision(False, "cpu" if have_cpu else "gpu",
                               reason="GPU failure: retry on the CPU")
    return FailureDecision(False, "cpu", reason="CPU failure: retry on the CPU")
