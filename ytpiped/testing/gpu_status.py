"""A daemon's published transcribe status with a GPU slot climb in it, from the real
Dispatcher and climb (for tests of `hw` and `status`)."""

from __future__ import annotations

from typing import Any


def climbed_gpu_status() -> dict[str, Any]:
    """GPU cuda:0 with a ceiling of 6 slots whose climb went 1 -> 2 -> 3 -> 4 and dropped
    back to 3."""
    from ytpiped.engines.dispatcher import Dispatcher
    from ytpiped.scheduling import gpu_slots

    class Slot:
        device_kind, device_name, model = "gpu", "cuda:0", "large-v3-turbo"

    d = Dispatcher([Slot() for _ in range(6)])  # type: ignore[misc]
    climb = d.climbs["cuda:0"]
    for active, tput in ((1, 50.0), (2, 80.0), (3, 90.0), (4, 91.0)):
        climb = gpu_slots.step(climb, active, tput)
    d.climbs["cuda:0"] = climb
    return d.status()
