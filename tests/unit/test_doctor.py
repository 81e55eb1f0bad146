"""`ytpiped doctor`'s checks one by one, with fakes where the real thing is a machine's
(NVML, the CUDA libraries) or a clock."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ytpiped import config, doctor
from ytpiped.store import SqliteDB, db_path

NOW = dt.datetime(2026, 11, 26, 12, 0).timestamp()


def settings(tmp_path: Path, **flags: Any) -> config.Settings:
    return config.load(flags={"data_dir": str(tmp_path / "data"), **flags})


def jar(tmp_path: Path, *lines: str, mode: int = 0o600) -> Path:
    path = tmp_path / "cookies.txt"
    path.write_text("# Netscape HTTP Cookie File\n" + "".join(f"{x}\n" for x in lines))
    os.chmod(path, mode)
    return path


LIVE = ".youtube.com\tTRUE\t/\tTRUE\t1900000000\tSAPISID\tsecretvalue"
SESSION = "#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t0\tLOGIN_INFO\tsecretvalue"
EXPIRED = ".youtube.com\tTRUE\t/\tTRUE\t1600000000\tSAPISID\tsecretvalue"
GOOGLE = ".google.com\tTRUE\t/\tTRUE\t1900000000\tSID\tsecretvalue"


@pytest.mark.parametrize("lines,mode,status,says", [
    ((LIVE, SESSION), 0o600, "ok", "2 live youtube.com cookies, owner-only"),
    ((LIVE,), 0o644, "warn", "readable by others"),
    ((EXPIRED,), 0o600, "fail", "all 1 youtube.com cookies have expired"),
    ((GOOGLE,), 0o600, "fail", "no youtube.com cookies"),
])
def test_cookie_file_checks(tmp_path: Path, lines: tuple[str, ...], mode: int, status: str,
                            says: str) -> None:
    path = jar(tmp_path, *lines, mode=mode)
    check = doctor.cookies(settings(tmp_path, **{"download.cookies_file": str(path)}), NOW)
    assert (check.status, says in check.detail) == (status, True), check
    assert "secretvalue" not in check.detail + check.fix  # never a cookie's value
    if status != "ok":
        assert check.fix


def test_missing_and_non_netscape_cookie_files_fail_with_the_fix(tmp_path: Path) -> None:
    gone = doctor.cookies(settings(tmp_path, **{"download.cookies_file": "/no/cookies.txt"}),
                          NOW)
    assert gone.status == "fail" and "does not exist" in gone.detail
    assert "export cookies.txt" in gone.fix
    (tmp_path / "c.json").write_text('[{"name": "SID"}]')
    js = doctor.cookies(settings(tmp_path, **{"download.cookies_file":
                                              str(tmp_path / "c.json")}), NOW)
    assert js.status == "fail" and "JSON" in js.detail


def test_yt_dlp_older_than_60_days_is_a_warning_with_the_upgrade_command() -> None:
    from ytpiped.download.ytdlp import ytdlp_version

    y, m, d = (int(x) for x in ytdlp_version().split(".")[:3])
    released = dt.datetime(y, m, d, 12).timestamp()
    assert doctor.ytdlp_version(released + 10 * 86400).status == "ok"
    old = doctor.ytdlp_version(released + 90 * 86400)
    assert old.status == "warn" and "90 days old" in old.detail
    assert "pip install -U 'yt-dlp[default]'" in old.fix


def test_yt_dlp_ejs_matches_what_yt_dlp_expects() -> None:
    check = doctor.ejs()
    assert check.status == "ok", check


def test_pot_plugin_is_optional() -> None:
    from importlib import metadata

    check = doctor.pot_plugin(config.load())
    try:
        metadata.version(doctor.POT_DIST)
    except metadata.PackageNotFoundError:  # the default install
        assert check.status == "ok" and "ytpiped[pot]" in check.detail
    else:  # ytpiped[pot]: loaded by yt-dlp, its server up (ok) or not (warn, with the fix)
        assert doctor.POT_DIST in check.detail and check.status in ("ok", "warn")
        assert check.status == "ok" or "provider" in check.fix


def test_database_quick_check(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert doctor.database(s).detail.endswith("not created yet")
    store = SqliteDB(db_path(s.data_path), now=0)
    store.add_videos([(f"v{i:010d}", f"https://example.org/{i}", "generic")
                      for i in range(200)], 0.0)
    store.close()
    assert doctor.database(s).status == "ok"
    path = db_path(s.data_path)
    data = bytearray(path.read_bytes())
    data[4096:4104] = b"\xff" * 8  # an invalid b-tree page header on the first table's page
    path.write_bytes(bytes(data))
    bad = doctor.database(s)
    assert bad.status == "fail" and bad.fix


def test_data_dir_not_writable_fails(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    check = doctor.data_dir(config.load(flags={"data_dir": str(locked / "data")}))
    assert check.status == "fail"


def test_data_dir_low_on_space_fails(tmp_path: Path) -> None:
    check = doctor.data_dir(settings(tmp_path, **{"download.min_free_disk_bytes": "1000TB"}))
    assert check.status == "fail" and "below download.min_free_disk_bytes" in check.detail


def test_a_model_path_that_is_not_there_fails_and_a_local_model_passes(tmp_path: Path) -> None:
    checks = doctor.whisper_models(settings(tmp_path, **{
        "transcribe.model_cpu": str(tmp_path / "nope")}), has_gpu=False)
    assert checks[0].status == "fail" and "does not exist" in checks[0].detail
    assert "transcribe.model_cpu" in checks[0].fix
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x")
    ok = doctor.whisper_models(settings(tmp_path, **{"transcribe.model_cpu": str(model),
                                                     "transcribe.model_gpu": str(model)}),
                               has_gpu=True)
    assert [c.status for c in ok] == ["ok", "ok"]


def test_an_uncached_model_name_fails_offline_and_warns_when_downloads_are_allowed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    off = doctor.whisper_models(settings(tmp_path, **{"transcribe.allow_download": False,
                                                      "transcribe.model_cpu": "tiny"}), False)
    assert off[0].status == "fail" and "not available offline" in off[0].detail
    on = doctor.whisper_models(settings(tmp_path, **{"transcribe.model_cpu": "tiny"}), False)
    assert on[0].status == "warn"


class FakeNVML:
    class NVMLError(Exception):
        pass

    def __init__(self, missing: bool) -> None:
        self.missing = missing

    def nvmlInit(self) -> None:
        if self.missing:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.65"

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return "NVIDIA H100"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(total=80 * 2**30, used=2**30, free=79 * 2**30)

    def __getattr__(self, name: str) -> Any:
        raise self.NVMLError(f"{name} not supported")


def test_no_gpu_is_fine_and_a_gpu_is_named() -> None:
    none, check = doctor.gpu(FakeNVML(missing=True))
    assert none == () and check.status == "ok" and "CPU" in check.detail
    found, check = doctor.gpu(FakeNVML(missing=False))
    assert len(found) == 1 and check.status == "ok" and "NVIDIA H100" in check.detail


@pytest.mark.parametrize("version,needed", [
    ("4.8.5", ["libcublas.so.12", "libcudnn_ops.so.9"]),
    ("4.4.0", ["libcublas.so.12", "libcudnn_ops_infer.so.8"]),
    ("3.24.0", ["libcublas.so.11", "libcudnn_ops_infer.so.8"]),
])
def test_cuda_libraries_of_the_version_ctranslate2_was_built_for(version: str,
                                                                 needed: list[str]) -> None:
    tried: list[str] = []

    def none_there(name: str) -> object:
        tried.append(name)
        raise OSError(f"{name}: cannot open shared object file")

    check = doctor.cuda_libraries(none_there, version)
    assert check.status == "fail" and all(n in tried for n in needed)
    assert all(n in check.detail for n in needed)
    assert "LD_LIBRARY_PATH" in check.fix and "nvidia-cublas-cu" in check.fix
    ok = doctor.cuda_libraries(lambda name: object(), version)
    assert ok.status == "ok"


def test_exit_status_and_json() -> None:
    checks = [doctor.Check("a", "ok", "fine"), doctor.Check("b", "warn", "hm", "do x")]
    assert not doctor.failed(checks) and doctor.to_json(checks)["ok"] is True
    checks.append(doctor.Check("c", "fail", "broken", "fix it"))
    assert doctor.failed(checks)
    text = doctor.format_checks(checks)
    assert "FAIL  c  broken" in text and "fix: fix it" in text and "1 failed" in text
