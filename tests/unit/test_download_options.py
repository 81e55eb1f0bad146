"""Pass-through settings for yt-dlp: validated when the config loads, handed over as
YoutubeDL parameters; deny-listed keys are config errors naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import structlog

from ytpiped import config
from ytpiped.download import options, ytdlp
from ytpiped.download.jsruntime import JsRuntime
from ytpiped.errors import ConfigError

POT = """
[download]
format = "bestaudio[abr<=64]/worstaudio"
proxy = "socks5://127.0.0.1:1080"
source_address = "0.0.0.0"
sleep_requests_s = 1.5

[download.extractor_args.youtube]
player_client = ["default", "mweb"]
Skip = "dash,hls"

[download.extractor_args."youtubepot-bgutilhttp"]
base_url = "http://127.0.0.1:4416"

[download.ytdlp_options]
retries = 7
geo_bypass = true
"""


def test_pass_through_settings_become_youtubedl_parameters(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(POT)
    cfg = config.load(f).download
    assert cfg.extractor_args == {
        "youtube": {"player_client": ["default", "mweb"], "skip": ["dash", "hls"]},
        "youtubepot-bgutilhttp": {"base_url": ["http://127.0.0.1:4416"]}}
    deno = JsRuntime("deno", "/opt/deno/bin/deno")
    opts = ytdlp.download_options(tmp_path / "audio", "vid", structlog.get_logger(),
                                  ytdlp.Options.of(cfg, js_runtime=deno))
    assert opts["format"] == "bestaudio[abr<=64]/worstaudio"
    assert opts["proxy"] == "socks5://127.0.0.1:1080"
    assert opts["source_address"] == "0.0.0.0"
    assert opts["sleep_interval_requests"] == 1.5
    assert opts["extractor_args"] == cfg.extractor_args
    assert opts["js_runtimes"] == {"deno": {"path": "/opt/deno/bin/deno"}}
    assert opts["retries"] == 7 and opts["geo_bypass"] is True
    assert opts["outtmpl"] == str(tmp_path / "audio" / "vid.%(ext)s")


def test_defaults_hand_over_nothing_extra(tmp_path: Path) -> None:
    opts = ytdlp.download_options(tmp_path, "vid", structlog.get_logger(),
                                  ytdlp.Options.of(config.load().download))
    assert opts["format"] == "worstaudio/worst"
    for key in ("proxy", "source_address", "sleep_interval_requests", "extractor_args",
                "js_runtimes", "cookiefile"):
        assert key not in opts


@pytest.mark.parametrize("key,why", [
    ("exec", "runs commands"), ("postprocessors", "runs commands"),
    ("external_downloader", "runs commands"), ("paths", "writes files outside the data dir"),
    ("outtmpl", "writes files outside the data dir"),
    ("download_archive", "writes files outside the data dir"),
    ("writeinfojson", "writes files outside the data dir"),
    ("password", "credentials"), ("noplaylist", "ytpiped sets it itself"),
])
def test_deny_listed_ytdlp_options_are_config_errors_naming_the_key(
        tmp_path: Path, key: str, why: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f"[download.ytdlp_options]\n{key} = \"x\"\n")
    with pytest.raises(ConfigError) as err:
        config.load(f)
    text = str(err.value)
    assert text.startswith(f"{f}: key 'download.ytdlp_options': '{key}' is not allowed")
    assert why in text


def test_deny_list_holds_for_environment_and_flags_too() -> None:
    with pytest.raises(ConfigError, match=r"env YTPIPED_DOWNLOAD__YTDLP_OPTIONS: key "
                                          r"'download.ytdlp_options': 'postprocessors'"):
        config.load(env={"YTPIPED_DOWNLOAD__YTDLP_OPTIONS": "{postprocessors = []}"})
    with pytest.raises(ConfigError, match=r"flag download\.ytdlp_options"):
        config.load(flags={"download.ytdlp_options": "{exec = \"rm -rf /\"}"})


@pytest.mark.parametrize("key,instead", [
    ("format", "download.format"), ("proxy", "download.proxy"),
    ("js_runtimes", "download.js_runtime"), ("cookiefile", "download.cookies_file"),
    ("extractor_args", "download.extractor_args"),
])
def test_options_with_a_key_of_their_own_point_to_it(key: str, instead: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'{key}' is set by the key '{instead}'")):
        config.load(flags={"download.ytdlp_options": {key: "x"}})


@pytest.mark.parametrize("key,value,expected", [
    ("download.extractor_args", "[\"youtube\"]", "expected a table"),
    ("download.extractor_args", "{youtube = \"player_client=web\"}",
     "'youtube': expected a table of arguments"),
    ("download.extractor_args", "{youtube = {player_client = [{a = 1}]}}",
     "'youtube.player_client': expected a string"),
    ("download.ytdlp_options", "[1, 2]", "expected a table of YoutubeDL parameters"),
    ("download.js_runtime", "\"nodejs22\"", "or the path of a JavaScript runtime"),
    ("download.proxy", "\"127.0.0.1:1080\"", "a proxy URL such as"),
    ("download.proxy", "\"ftp://h:1\"", "a proxy URL such as"),
    ("download.source_address", "\"eth0\"", "a local IP address"),
    ("download.sleep_requests_s", "-1", "a number >= 0"),
    ("download.breaker_threshold", "-1", "an integer >= 0"),
])
def test_bad_pass_through_values_name_the_key(tmp_path: Path, key: str, value: str,
                                              expected: str) -> None:
    section, name = key.split(".")
    f = tmp_path / "c.toml"
    f.write_text(f"[{section}]\n{name} = {value}\n")
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")) as err:
        config.load(f)
    assert expected in str(err.value)


@pytest.mark.parametrize("value", ["auto", "deno", "node", "bun", "quickjs", "/usr/bin/node",
                                   "~/.deno/bin/deno"])
def test_js_runtime_accepts_names_and_paths(value: str) -> None:
    assert config.load(flags={"download.js_runtime": value}).download.js_runtime == value


def test_every_denied_key_has_a_reason() -> None:
    assert {"exec", "postprocessors", "paths", "outtmpl"} <= set(options.DENIED)
    assert all(options.DENIED.values())
    assert not set(options.DENIED) & set(options.INSTEAD)


def test_ytdlp_options_take_json_values_only(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[download.ytdlp_options]\ndateafter = 2024-01-01\n")
    with pytest.raises(ConfigError, match="strings, numbers, booleans, lists and tables only"):
        config.load(f)
