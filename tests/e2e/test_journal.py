"""`ytpiped run` under systemd: with $JOURNAL_STREAM naming its stderr, every log line
starts with its syslog priority, so `journalctl -p err` finds the errors."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.e2e.helpers import cli, counts, start_daemon, wait_for, write_fake_config


def test_run_under_the_journal_prefixes_each_line_with_its_priority(
        data_dir: Path, tmp_path: Path) -> None:
    write_fake_config(data_dir, fail={"analyze:journalvd02": "permanent"})
    r = cli(data_dir, "add", "-", input="journalvd01\njournalvd02\n")
    assert r.stdout.startswith("added 2, duplicate 0, invalid 0"), r.stdout + r.stderr
    log = tmp_path / "journal-stream"
    log.touch()
    st = os.stat(log)
    proc = start_daemon(data_dir, log, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
                                        "INVOCATION_ID": "0123456789abcdef"})
    try:
        wait_for(lambda: counts(data_dir).get("done") == 1 and counts(data_dir).get("failed")
                 == 1, what="one video done, one failed")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    lines = log.read_text().splitlines()
    assert lines and all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines
    entries = [(int(line[1]), json.loads(line[3:])) for line in lines]
    by_event = {e["event"]: prio for prio, e in entries}
    assert by_event["daemon_started"] == 6
    assert by_event["stage_failed"] == 3
    assert all(prio == {"error": 3, "warning": 4, "info": 6, "debug": 7}[e["level"]]
               for prio, e in entries)
