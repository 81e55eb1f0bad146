"""The shipped systemd units: hardening rated by `systemd-analyze security` (skipped where
systemd-analyze is not installed) and the restart policy a crash loop needs."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
#: the exposure `systemd-analyze security` may rate each unit at most (0 safe .. 10 unsafe)
LIMITS = {"ytpiped.service": 3.5, "ytpiped-user.service": 6.0}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("name", sorted(LIMITS))
def test_unit_exposure_rating(name: str) -> None:
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(UNITS / name)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= LIMITS[name], r.stdout
    # a misspelt or unknown setting is ignored with a warning: none may be
    assert "Unknown" not in r.stderr and "Failed to parse" not in r.stderr, r.stderr


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_crash_loop_stops_and_what_the_daemon_needs_stays(name: str) -> None:
    u = unit(name)
    start_limit_s = int(u["Unit"]["StartLimitIntervalSec"])
    burst = int(u["Unit"]["StartLimitBurst"])
    restart_s = int(u["Service"].get("RestartSec", "0").rstrip("s") or 0)
    assert 2 <= burst <= 10
    # restarts RestartSec apart must fit the window, or the limit never trips
    assert burst * restart_s < start_limit_s
    svc = u["Service"]
    # restarting cannot fix a configuration error (2) or a data dir another daemon owns (3)
    assert set(svc["RestartPreventExitStatus"].split()) == {"2", "3"}
    assert svc["UMask"] == "0027"
    families = set(svc["RestrictAddressFamilies"].split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= families  # control socket, sd_notify, network
    # the JavaScript runtime yt-dlp uses compiles to W+X memory; GPUs need /dev/nvidia*
    for forbidden in ("MemoryDenyWriteExecute", "PrivateDevices", "DevicePolicy", "DeviceAllow",
                      "ProtectClock"):
        assert forbidden not in svc, forbidden
    if name == "ytpiped-user.service":
        # a user manager cannot drop capabilities: the unit would fail with 218/CAPABILITIES
        assert "CapabilityBoundingSet" not in svc
