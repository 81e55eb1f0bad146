"""`ytpiped doctor` as a user runs it: a broken setup fails with a fix per problem and
exit 1; the demo's setup passes with exit 0."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.helpers import env_for
from ytpiped.demo import write_config
from ytpiped.testing.fake_ollama import FakeOllama
from ytpiped.testing.media_server import MediaServer


def doctor(config: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ytpiped", "--config", str(config), "doctor",
                           *args], env=env_for(data_dir), capture_output=True, text=True,
                          timeout=120)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


def test_a_broken_setup_fails_with_a_fix_for_each_problem(
        servers: tuple[MediaServer, FakeOllama], data_dir: Path, tmp_path: Path) -> None:
    _, llm = servers
    config = tmp_path / "bad.toml"
    config.write_text(f"""
data_dir = "{data_dir}"
[download]
cookies_file = "{tmp_path / 'gone' / 'cookies.txt'}"
[transcribe]
model_cpu = "{tmp_path / 'no-such-model'}"
allow_download = false
[mine]
hosts = ["http://127.0.0.1:{closed_port()}", "{llm.url}"]
model = "llama3.3:70b"
""")
    r = doctor(config, data_dir, "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is False
    by_name = {c["name"]: c for c in report["checks"]}
    cookies, model = by_name["cookies"], by_name["transcribe.model_cpu"]
    assert cookies["status"] == model["status"] == "fail"
    assert "does not exist" in cookies["detail"] and "export cookies.txt" in cookies["fix"]
    assert "does not exist" in model["detail"] and "transcribe.model_cpu" in model["fix"]
    hosts = [c for c in report["checks"] if c["name"] == "LLM host"]
    assert [c["status"] for c in hosts] == ["fail", "fail"]
    assert "not reachable" in hosts[0]["detail"] and "ollama serve" in hosts[0]["fix"]
    assert "llama3.3:70b not pulled" in hosts[1]["detail"]
    assert hosts[1]["fix"] == f"OLLAMA_HOST={llm.url} ollama pull llama3.3:70b"
    assert all(c["fix"] for c in report["checks"] if c["status"] == "fail")
    text = doctor(config, data_dir)
    assert text.returncode == 1 and "FAIL  cookies" in text.stdout
    assert "fix: " in text.stdout and "4 failed" in text.stdout


def test_the_demo_setup_passes(servers: tuple[MediaServer, FakeOllama], data_dir: Path,
                               tmp_path: Path) -> None:
    _, llm = servers
    config = tmp_path / "demo.toml"
    write_config(config, data_dir, llm.url)
    r = doctor(config, data_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok    JavaScript runtime" in r.stdout and "0 failed" in r.stdout
