from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from ytpiped import config
from ytpiped.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "ytpiped.example.toml"

# DESIGN.md §5: keys other parts and checks rely on, with their documented defaults
CONTRACT = {
    "data_dir": "~/.local/share/ytpiped",
    "download.cookies_file": "",
    "download.delay_buffer_build_s": (30.0, 60.0),
    "download.delay_steady_s": (180.0, 300.0),
    "download.delay_catch_up_s": (60.0, 120.0),
    "download.buffer_target": 20,
    "download.low_water": 5,
    "download.high_water": 40,
    "download.max_buffer_bytes": 20_000_000_000,
    "download.max_videos_per_hour": 250,
    "download.rate_limit_cooldown_s": 3600,
    "download.max_attempts": 5,
    "download.keep_audio": False,
    "transcribe.model_gpu": "large-v3-turbo",
    "transcribe.model_cpu": "small",
    "transcribe.gpu_slots": None,
    "transcribe.cpu_slots": None,
    "transcribe.model_vram_gb": None,
    "transcribe.reserved_vram_mb": 500,
    "transcribe.max_cpu_time_s": 300,
    "transcribe.stop_cpu_at_progress": 0.8,
    "transcribe.policy": "ect",
    "transcribe.batch_size": 8,
    "transcribe.max_chunk_s": 900,
    "transcribe.output_formats": ["json", "txt", "srt", "vtt"],
    "mine.hosts": ["http://127.0.0.1:11434"],
    "mine.model": "qwen2.5:7b-instruct",
    "mine.eval_model": "",
    "mine.num_ctx": 8192,
    "mine.workers": None,
    "mine.request_timeout_s": 300,
    "daemon.shutdown_grace_s": 30,
    "daemon.metrics_port": 0,
}


def test_every_contract_key_exists_with_its_default() -> None:
    s = config.load()
    for key, default in CONTRACT.items():
        assert config.value_of(s, key) == default, key


def test_example_file_documents_every_key_and_loads() -> None:
    s = config.load(EXAMPLE)
    values = [(k, v) for k, v, _ in config.effective(s)]
    assert values == [(k, v) for k, v, _ in config.effective(config.load())]  # = defaults
    assert text_is_current(), "config/ytpiped.example.toml is stale: run `make config-example`"
    text = EXAMPLE.read_text()
    doc = tomllib.loads(text)
    for key, _ in config.all_keys():
        section, _, name = key.rpartition(".")
        table = doc.get(section, {}) if section else doc
        assert name in table, f"{key} missing from the example config"
        # a comment documents it: either on the line or the line before
        assert re.search(rf"#[^\n]*\n{re.escape(name)} =|^{re.escape(name)} = [^\n]*#", text,
                         re.M), f"{key} has no comment"


def text_is_current() -> bool:
    return EXAMPLE.read_text() == config.render_example()


def test_precedence_default_file_env_flag(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[download]\nmax_attempts = 3\nlow_water = 2\nbuffer_target = 10\n")
    env = {"YTPIPED_DOWNLOAD__MAX_ATTEMPTS": "4", "YTPIPED_DOWNLOAD__LOW_WATER": "3"}
    s = config.load(f, env, {"download.max_attempts": "7"})
    assert s.download.max_attempts == 7
    assert s.download.low_water == 3
    assert s.download.buffer_target == 10
    assert s.download.high_water == 40
    assert s.origins["download.max_attempts"] == "flag download.max_attempts"
    assert s.origins["download.low_water"] == "env YTPIPED_DOWNLOAD__LOW_WATER"
    assert s.origins["download.buffer_target"] == str(f)
    assert "download.high_water" not in s.origins


def test_config_path_resolution(tmp_path: Path) -> None:
    assert config.config_path("a.toml", {"YTPIPED_CONFIG": "b.toml"}) == Path("a.toml")
    assert config.config_path(None, {"YTPIPED_CONFIG": "b.toml"}) == Path("b.toml")


def test_env_values_parse_as_toml_or_strings() -> None:
    s = config.load(env={"YTPIPED_DOWNLOAD__DELAY_STEADY_S": "[1, 2]",
                         "YTPIPED_MINE__HOSTS": "http://a:1,http://b:2",
                         "YTPIPED_TRANSCRIBE__GPU_SLOTS": "auto",
                         "YTPIPED_TRANSCRIBE__CPU_SLOTS": "2",
                         "YTPIPED_DOWNLOAD__MAX_BUFFER_BYTES": "512MiB",
                         "YTPIPED_DATA_DIR": "/srv/y"})
    assert s.download.delay_steady_s == (1.0, 2.0)
    assert s.mine.hosts == ["http://a:1", "http://b:2"]
    assert s.transcribe.gpu_slots is None and s.transcribe.cpu_slots == 2
    assert s.download.max_buffer_bytes == 512 * 2**20
    assert s.data_dir == "/srv/y"


@pytest.mark.parametrize("body,message", [
    ("[download]\nmax_atempts = 3\n", "unknown key 'download.max_atempts'"),
    ("[downlaod]\nmax_attempts = 3\n", "unknown section [downlaod]"),
    ("[download]\nmax_attempts = \"three\"\n", "key 'download.max_attempts': expected an integer"),
    ("[download]\nmax_attempts = 0\n", "expected an integer >= 1"),
    ("[transcribe]\nstop_cpu_at_progress = 1.5\n",
     "key 'transcribe.stop_cpu_at_progress': expected a number between 0 and 1, got 1.5"),
    ("[download]\ndelay_steady_s = [300, 180]\n", "min <= max (got min 300 > max 180)"),
    ("[download]\ndelay_steady_s = [1, 2, 3]\n", "expected [min, max]"),
    ("[download]\nmax_buffer_bytes = \"20 jiggabytes\"\n",
     "key 'download.max_buffer_bytes': expected a size like"),
    ("[download]\nkeep_audio = \"yes\"\n", "expected true or false"),
    ("[transcribe]\npolicy = \"fastest\"\n", "expected one of \"ect\", \"benefit\""),
    ("[transcribe]\noutput_formats = [\"json\", \"pdf\"]\n", "a list of strings from"),
    ("[transcribe]\ngpu_slots = \"many\"\n", "expected \"auto\" or an integer"),
    ("[download]\nlow_water = 50\n", "'download.low_water' (50) must be below"),
    ("[mine]\noverlap_tokens = 5000\n", "'mine.overlap_tokens' (5000) must be below"),
    ("[download\n", "not valid TOML"),
])
def test_file_errors_name_file_key_and_expectation(tmp_path: Path, body: str,
                                                   message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ConfigError) as err:
        config.load(f)
    assert message in str(err.value)
    assert str(f) in str(err.value)


def test_missing_and_directory_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        config.load(tmp_path)


def test_env_error_names_variable() -> None:
    with pytest.raises(ConfigError, match="YTPIPED_DOWNLOAD__BOGUS: unknown key"):
        config.load(env={"YTPIPED_DOWNLOAD__BOGUS": "1"}, strict_env=True)
    with pytest.raises(ConfigError, match=r"env YTPIPED_DAEMON__METRICS_PORT: key "
                                          r"'daemon\.metrics_port'"):
        config.load(env={"YTPIPED_DAEMON__METRICS_PORT": "70000"})


def test_settings_are_frozen() -> None:
    s = config.load()
    with pytest.raises(AttributeError):
        s.download.max_attempts = 9  # type: ignore[misc]


@pytest.mark.parametrize("text,expected", [
    ("20GB", 20 * 10**9), ("512MiB", 512 * 2**20), ("1.5 GB", 1_500_000_000), ("100", 100),
    (42, 42), ("3kb", 3000),
])
def test_parse_size(text: str | int, expected: int) -> None:
    assert config.parse_size(text) == expected


@pytest.mark.parametrize("text", ["GB", "-1GB", "1XB", "", True])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        config.parse_size(text)


@pytest.mark.parametrize("body,message", [
    ("[download]\ndelay_steady_s = [nan, nan]\n", "key 'download.delay_steady_s': expected"),
    ("[download]\ndelay_steady_s = [0, inf]\n", "key 'download.delay_steady_s': expected"),
    ("[download]\ndelay_catch_up_s = [-inf, 1]\n", "key 'download.delay_catch_up_s': expected"),
    ("[download]\nrate_limit_cooldown_s = inf\n", "key 'download.rate_limit_cooldown_s'"),
    ("[transcribe]\nmodel_vram_gb = nan\n", "key 'transcribe.model_vram_gb'"),
    ("[download]\nmax_buffer_bytes = inf\n", "key 'download.max_buffer_bytes'"),
    ("[mine]\nhosts = []\n", "key 'mine.hosts': expected a non-empty list"),
    ("[mine]\nhosts = [\"http://a:1\", \" \"]\n", "key 'mine.hosts': expected a non-empty list"),
])
def test_non_finite_numbers_and_empty_host_lists_are_errors(tmp_path: Path, body: str,
                                                             message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ConfigError) as err:
        config.load(f)
    assert message in str(err.value) and str(f) in str(err.value)


def test_every_float_key_and_float_in_a_list_rejects_non_finite_values() -> None:
    kinds = {"float": ["nan", "inf", "-inf"], "auto_float": ["nan", "inf"],
             "range": ["[nan, nan]", "[0, inf]", "[1, nan]"], "size": ["inf", "nan"]}
    checked = 0
    for key, f in config.all_keys():
        for raw in kinds.get(f.metadata["kind"], []):
            name = config.env_name(key)
            with pytest.raises(ConfigError, match=rf"env {name}: key '{re.escape(key)}'"):
                config.load(env={name: raw})
            checked += 1
    assert checked > 40  # every float key of every section was tried


def test_output_formats_may_leave_out_json_but_not_name_unknown_ones(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[transcribe]\noutput_formats = [\"txt\"]\n")
    assert config.load(f).transcribe.output_formats == ["txt"]
    f.write_text("[transcribe]\noutput_formats = [\"txt\", \"docx\"]\n")
    with pytest.raises(ConfigError, match=r"key 'transcribe\.output_formats'"):
        config.load(f)


def test_unknown_environment_variable_is_a_warning_unless_strict() -> None:
    env = {"YTPIPED_NOT_A_KEY": "1", "YTPIPED_DOWNLOAD__LOW_WATER": "3"}
    s = config.load(env=env)
    assert s.download.low_water == 3
    (warning,) = s.warnings
    assert "YTPIPED_NOT_A_KEY" in warning and "ignored" in warning
    with pytest.raises(ConfigError, match="environment variable YTPIPED_NOT_A_KEY: unknown"):
        config.load(env=env, strict_env=True)
    assert config.load(env={"YTPIPED_CONFIG": "x.toml"}).warnings == ()


GOOD_COOKIES = ("# Netscape HTTP Cookie File\n"
                ".youtube.com\tTRUE\t/\tTRUE\t1999999999\tSID\tsecretcookievalue42\n")


def _cookie_case(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "cookies.txt"
    if case == "directory":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "empty":
        path.write_text("")
    elif case == "json":
        path.write_text('[{"name": "SID", "value": "secretcookievalue42"}]\n')
    elif case == "no header":
        path.write_text(GOOD_COOKIES.split("\n", 1)[1])
    elif case == "unreadable":
        path.write_text(GOOD_COOKIES)
        path.chmod(0)
    return path


@pytest.mark.parametrize("case,problem", [
    ("missing", "does not exist"),
    ("directory", "is a directory"),
    ("fifo", "is not a regular file"),
    ("empty", "is empty"),
    ("json", "is JSON, not the Netscape cookies.txt format"),
    ("no header", "is not in the Netscape cookies.txt format"),
    pytest.param("unreadable", "cannot be read (permission denied)", marks=pytest.mark.skipif(
        os.geteuid() == 0, reason="root reads any file")),
])
def test_bad_cookies_file_is_a_config_error_naming_key_path_and_problem(
        tmp_path: Path, case: str, problem: str) -> None:
    path = _cookie_case(tmp_path, case)
    f = tmp_path / "c.toml"
    f.write_text(f'[download]\ncookies_file = "{path}"\n')
    settings = config.load(f)  # loading alone does not touch the file: status keeps working
    with pytest.raises(ConfigError) as err:
        config.check_cookies_file(settings)
    message = str(err.value)
    assert f"{f}: key 'download.cookies_file': {path} {problem}" in message
    assert "secretcookievalue42" not in message  # never the contents


def test_good_or_no_cookies_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "cookies.txt"
    path.write_text(GOOD_COOKIES)
    config.check_cookies_file(config.load(env={"YTPIPED_DOWNLOAD__COOKIES_FILE": str(path)}))
    config.check_cookies_file(config.load())  # "" = no cookies
    assert config.cookies_file_problem(str(path)) is None


def test_metrics_bind_must_be_an_ip_address_at_config_check() -> None:
    with pytest.raises(config.ConfigError, match=r"daemon\.metrics_bind.*IP address.*'my-host'"):
        config.load(flags={"daemon.metrics_bind": "my-host"})
    assert config.load(flags={"daemon.metrics_bind": "::1"}).daemon.metrics_bind == "::1"


def test_attempts_per_purpose_and_the_deprecated_meaning_of_download_max_attempts() -> None:
    s = config.load(flags={"download.max_attempts": 7, "daemon.max_attempts": 3,
                           "transcribe.chunk_attempts": 2})
    assert (s.download.max_attempts, s.daemon.max_attempts, s.transcribe.chunk_attempts) == \
        (7, 3, 2)
    assert s.warnings == ()
    old = config.load(flags={"download.max_attempts": 7})  # set the way it used to be
    assert old.daemon.max_attempts == 7
    assert any("download.max_attempts" in w and "daemon.max_attempts" in w
               for w in old.warnings)
    assert "via download.max_attempts" in old.origins["daemon.max_attempts"]
    assert config.load().daemon.max_attempts == 5 and config.load().warnings == ()


def test_every_problem_is_reported_at_once_each_naming_its_source_and_key(
        tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[download]\nmax_attempts = 0\nmax_atempts = 3\nkeep_audio = \"yes\"\n"
                 "[downlaod]\nlow_water = 1\n[mine]\nnum_ctx = 10\n")
    with pytest.raises(config.InvalidConfig) as err:
        config.load(f, env={"YTPIPED_DAEMON__METRICS_PORT": "70000",
                            "YTPIPED_NOT__A_KEY": "1"},
                    flags={"transcribe.policy": "fastest", "mine.workers": "0"},
                    strict_env=True)
    problems = err.value.problems
    assert problems == (
        f"{f}: key 'download.max_attempts': expected an integer >= 1, got 0",
        f"{f}: unknown key 'download.max_atempts' (did you mean 'download.max_attempts'? "
        "see `ytpiped config show` for the valid keys)",
        f"{f}: key 'download.keep_audio': expected true or false, got 'yes'",
        f"{f}: unknown section [downlaod] (did you mean [download]? valid: add, download, sources, "
        "analyze, transcribe, mine, daemon, notify, store, web)",
        f"{f}: key 'mine.num_ctx': expected an integer >= 512, got 10",
        "env YTPIPED_DAEMON__METRICS_PORT: key 'daemon.metrics_port': expected an integer "
        "between 0 and 65535, got 70000",
        "environment variable YTPIPED_NOT__A_KEY: unknown key 'not.a_key' (variables are "
        "YTPIPED_<SECTION>__<KEY>; see `ytpiped config show` for the keys)",
        "flag transcribe.policy: key 'transcribe.policy': expected one of \"ect\", "
        "\"benefit\", got 'fastest'",
        "flag mine.workers: key 'mine.workers': expected \"auto\" or an integer >= 1, got 0")
    assert str(err.value).startswith("9 configuration errors:\n  ")
    assert all(f"  {p}" in str(err.value) for p in problems)


@pytest.mark.parametrize("given,meant", [
    ("download.max_atempts", "download.max_attempts"),
    ("mine.max_attempts", "download.max_attempts"),   # the right name in the wrong section
    ("max_attempts", "download.max_attempts"),        # the section left out
    ("transcribe.format", "download.format"),
    ("daemon.metric_port", "daemon.metrics_port"),
    ("data_directory", "data_dir"),
])
def test_unknown_keys_suggest_the_key_meant(given: str, meant: str) -> None:
    assert config.suggest(given) == meant
    with pytest.raises(ConfigError, match=re.escape(f"did you mean '{meant}'?")):
        config.load(flags={given: "1"})
    env = "YTPIPED_" + given.upper().replace(".", "__")
    with pytest.raises(ConfigError, match=re.escape(f"did you mean {config.env_name(meant)}?")):
        config.load(env={env: "1"}, strict_env=True)


def test_nothing_close_suggests_nothing() -> None:
    assert config.suggest("download.zzzzqqq") is None
    with pytest.raises(ConfigError) as err:
        config.load(flags={"download.zzzzqqq": "1"})
    assert "did you mean" not in str(err.value)


def test_a_bad_value_is_not_reported_again_as_a_broken_relation(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    # the default low_water (5) is not below high_water: no second message about it
    f.write_text("[download]\nlow_water = \"many\"\nhigh_water = 4\nbuffer_target = 4\n")
    with pytest.raises(config.InvalidConfig) as err:
        config.load(f)
    assert err.value.problems == (f"{f}: key 'download.low_water': expected an integer >= 0, "
                                  "got 'many'",)


def test_config_check_reports_a_bad_cookies_file_with_the_other_problems(
        tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f"[download]\ncookies_file = \"{tmp_path / 'gone.txt'}\"\n")
    config.load(f)  # loading alone does not read the cookies file
    f.write_text(f"[download]\ncookies_file = \"{tmp_path / 'gone.txt'}\"\nmax_attempts = 0\n")
    with pytest.raises(config.InvalidConfig) as err:
        config.load(f, check_cookies=True)
    assert len(err.value.problems) == 2
    assert "key 'download.cookies_file'" in err.value.problems[1]
    assert "does not exist" in err.value.problems[1]


def test_config_file_lookup_xdg_then_system(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "etc" / "ytpiped.toml"
    monkeypatch.setattr(config, "SYSTEM_CONFIG", system)
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    user_default = home / ".config" / "ytpiped" / "ytpiped.toml"
    user_xdg = xdg / "ytpiped" / "ytpiped.toml"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)}
    assert config.config_path(None, env) is None  # nothing exists
    system.parent.mkdir(parents=True)
    system.write_text("")
    assert config.config_path(None, env) == system
    user_xdg.parent.mkdir(parents=True)
    user_xdg.write_text("")
    assert config.config_path(None, env) == user_xdg  # the user's file before /etc
    user_default.parent.mkdir(parents=True)
    user_default.write_text("")
    assert config.config_path(None, {"HOME": str(home)}) == user_default
    # XDG_CONFIG_HOME empty or relative is ignored (the XDG base directory rules)
    assert config.config_path(None, {"HOME": str(home), "XDG_CONFIG_HOME": ""}) == user_default
    assert config.config_path(None, {"HOME": str(home), "XDG_CONFIG_HOME": "rel"}) == \
        user_default
    assert config.config_path(None, {}) == system  # no home at all
    # YTPIPED_CONFIG and --config still come first
    assert config.config_path(None, {**env, "YTPIPED_CONFIG": "b.toml"}) == Path("b.toml")
    assert config.config_path("a.toml", env) == Path("a.toml")


def _unusual_settings(tmp_path: Path) -> config.Settings:
    f = tmp_path / "unusual.toml"
    f.write_text("""data_dir = "/srv/y t\\\\piped \\"x\\""
[download]
format = "bestaudio[ext=m4a]/best\\nline\\ttab\\u0007bell"
delay_steady_s = [0.1234567891, 2.5]
max_buffer_bytes = 1234567891
min_free_disk_bytes = "512MiB"
extractor_args = {youtube = {player_client = ["default", "mweb"]}, "odd key" = {a = "b"}}
ytdlp_options = {retries = 5, ratelimit = 1.5}
keep_audio = true
[transcribe]
gpu_slots = "auto"
cpu_slots = 3
model_vram_gb = 2.75
output_formats = ["txt"]
[mine]
hosts = ["http://a:1", "http://b:2"]
retry_base_s = 1e-05
[daemon]
umask = 0o077
retry_max_s = 1e20
""")
    return config.load(f, env={"YTPIPED_MINE__NUM_CTX": "4096"},
                       flags={"download.max_attempts": "7"})


def test_effective_toml_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    settings = _unusual_settings(tmp_path)
    text = config.render_effective(settings)
    out = tmp_path / "effective.toml"
    out.write_text(text)
    again = config.load(out)
    assert again == settings
    for dotted, _ in config.all_keys():
        assert config.value_of(again, dotted) == config.value_of(settings, dotted), dotted
    lines = text.splitlines()
    assert "num_ctx = 4096  # env YTPIPED_MINE__NUM_CTX" in lines
    assert "max_attempts = 7  # flag download.max_attempts" in lines
    assert "min_free_disk_bytes = 536870912  # " + str(tmp_path / "unusual.toml") in lines
    assert "max_buffer_bytes = 1234567891  # " + str(tmp_path / "unusual.toml") in lines
    assert "umask = 0o077  # " + str(tmp_path / "unusual.toml") in lines
    assert "window_tokens = 1500  # default" in lines
    assert not any(ord(c) < 32 and c != "\n" for c in text)  # escaped, terminal-safe


def test_effective_toml_of_the_defaults_loads_back() -> None:
    text = config.render_effective(config.load())
    assert config.load(env={}) == config.Settings()
    parsed = tomllib.loads(text)
    assert parsed["download"]["max_buffer_bytes"] == "20.0GB"
    assert parsed["transcribe"]["gpu_slots"] == "auto"


def test_web_keys_default_to_loopback_and_name_the_key_when_wrong() -> None:
    s = config.load()
    assert (s.web.enabled, s.web.bind, s.web.port, s.web.token) == (True, "127.0.0.1", 8765, "")
    with pytest.raises(config.InvalidConfig) as err:
        config.load(flags={"web.bind": "myhost", "web.token": "short-secret"})
    text = str(err.value)
    assert "key 'web.bind': expected an IP address" in text
    assert "key 'web.token': expected at least 16 characters" in text
    assert "short-secret" not in text  # a secret is never repeated


@pytest.mark.parametrize("key,value,expected", [
    ("sources.after", "May 2024", "a date like \"2024-05-01\""),
    ("sources.title_exclude", "(", "a regular expression"),
    ("transcribe.youtube_subtitles", "always", "one of \"never\", \"manual\", \"any\""),
    ("download.sponsorblock_categories", ["ads"], "a list of strings from \"sponsor\""),
    ("download.sponsorblock_api", "sponsor.example", "an http:// or https:// URL"),
])
def test_source_keys_are_checked(key: str, value: object, expected: str) -> None:
    with pytest.raises(config.InvalidConfig) as err:
        config.load(flags={key: value}, env={})
    assert f"key '{key}'" in str(err.value) and expected in str(err.value)


def test_source_defaults() -> None:
    s = config.load(env={})
    assert (s.sources.follow_interval_h, s.sources.after, s.transcribe.youtube_subtitles,
            s.download.sponsorblock_categories) == (6.0, "", "never", [])
    assert config.load(flags={"sources.after": "2024-05-01"}, env={}).sources.after == "20240501"
