"""The command line's parser: help on every option, the parser built for one command, and
the shell completion scripts generated from it."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ytpiped import cli, completion, config


def _parsers(parser: argparse.ArgumentParser, path: str = "ytpiped"
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    return {path.split(" ", 1)[1] for path, _ in _parsers(parser) if " " in path}


def test_every_option_argument_and_command_has_help_and_no_empty_default() -> None:
    seen = 0
    for path, parser in _parsers(cli._parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{path} {choice.dest}: no help"
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{path} {name}: no help"
            seen += 1
        text = parser.format_help()
        for empty in ("(default: None)", "(default: False)", "(default: [])"):
            assert empty not in text, f"`{path} --help` shows {empty}"
    assert seen > 40
    # defaults that say something are still shown
    status = dict(_parsers(cli._parser()))["ytpiped status"].format_help()
    assert "(default: 2.0)" in status
    assert "XDG_CONFIG_HOME" in cli._parser().format_help()


@pytest.mark.parametrize("argv,command", [
    (["status", "--json"], "status"),
    (["--config", "status", "status"], "status"),   # a value that looks like a command
    (["--conf", "add", "status"], "status"),        # an abbreviated option takes its value too
    (["--set=x=1", "--data-dir", "/tmp/d", "retry", "--kind", "network"], "retry"),
    (["--log-level", "debug", "config", "show", "--toml"], "config"),
    (["db", "backup", "f.db", "--force"], "db"),
    (["completion", "fish"], "completion"),
])
def test_the_parser_built_for_one_command_parses_like_the_full_one(argv: list[str],
                                                                   command: str) -> None:
    assert cli._command_named(cli._parser(), argv) == command
    small, full = cli._parser(argv), cli._parser()
    assert len(_subcommands(small)) < len(_subcommands(full))
    assert small.parse_args(argv) == full.parse_args(argv)


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h", "status"], ["--version"],
                                  ["bogus"], ["--", "status"]])
def test_help_version_and_unknown_commands_get_the_full_parser(argv: list[str]) -> None:
    assert cli._command_named(cli._parser(), argv) is None
    assert _subcommands(cli._parser(argv)) == _subcommands(cli._parser())


def _script(shell: str) -> str:
    return completion.script(shell, cli._parser(), [k for k, _ in config.all_keys()])


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_completion_scripts_name_every_command_and_option(shell: str) -> None:
    text = _script(shell)
    parser = cli._parser()
    for path, sub in _parsers(parser):
        name = path.rsplit(" ", 1)[-1]
        assert name in text, f"{shell}: {path} missing"
        for action in sub._actions:
            for flag in action.option_strings:
                shown = flag if shell != "fish" else flag.lstrip("-")
                assert shown in text, f"{shell}: {path} {flag} missing"
    assert "download.max_attempts" in text  # --set offers the config keys


def test_cli_prints_the_completion_script_without_reading_the_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[downlaod]\n")
    monkeypatch.setenv("YTPIPED_CONFIG", str(bad))
    assert cli.main(["completion", "bash"]) == cli.EXIT_OK
    assert capsys.readouterr().out == _script("bash")


needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


@needs_bash
def test_bash_script_is_valid_bash(tmp_path: Path) -> None:
    script = tmp_path / "ytpiped.bash"
    script.write_text(_script("bash"))
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _bash_complete(tmp_path: Path, line: str) -> list[str]:
    """What the bash completion offers for `line` (the cursor at its end)."""
    script = tmp_path / "ytpiped.bash"
    script.write_text(_script("bash"))
    words = line.split(" ")
    driver = (f"source {script}\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n"
              "_ytpiped\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


@needs_bash
def test_bash_completion_offers_commands_options_and_values(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("")
    (tmp_path / "outdir").mkdir()
    assert _bash_complete(tmp_path, "ytpiped sta") == ["status"]
    assert _bash_complete(tmp_path, "ytpiped --config x.toml re") == [
        "retry", "remine", "retranscribe", "reindex", "resume"]
    assert _bash_complete(tmp_path, "ytpiped config ") == ["show", "check"]
    assert set(_bash_complete(tmp_path, "ytpiped status --")) == {
        "--help", "--json", "--watch", "--interval", "--hosts"}
    assert _bash_complete(tmp_path, "ytpiped config show --t") == ["--toml"]
    assert _bash_complete(tmp_path, "ytpiped retry --stage tr") == ["transcribe"]
    assert _bash_complete(tmp_path, "ytpiped export --format ") == ["jsonl", "md", "csv",
                                                                    "transcripts"]
    assert _bash_complete(tmp_path, "ytpiped add ur") == ["urls.txt"]
    assert _bash_complete(tmp_path, "ytpiped export --out out") == ["outdir"]
    assert _bash_complete(tmp_path, "ytpiped --set download.max_att") == \
        ["download.max_attempts="]
    assert _bash_complete(tmp_path, "ytpiped completion ") == ["bash", "zsh", "fish"]
    assert _bash_complete(tmp_path, "ytpiped pause ") == ["download", "analyze", "transcribe",
                                                          "mine", "evaluate"]


@pytest.mark.parametrize("shell,check", [("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])])
def test_zsh_and_fish_scripts_parse(tmp_path: Path, shell: str, check: list[str]) -> None:
    if shutil.which(check[0]) is None:
        pytest.skip(f"no {shell} on this machine")
    script = tmp_path / f"ytpiped.{shell}"
    script.write_text(_script(shell))
    r = subprocess.run([*check, str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="no fish on this machine")
def test_fish_completion_offers_commands_options_and_values(tmp_path: Path) -> None:
    script = tmp_path / "ytpiped.fish"
    script.write_text(_script("fish"))

    def offered(line: str) -> list[str]:
        r = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C '{line}'"],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return [row.split("\t")[0] for row in r.stdout.splitlines()]

    assert offered("ytpiped sta") == ["status"]
    assert offered("ytpiped --config x.toml re") == ["remine", "resume", "retranscribe",
                                                         "retry"]
    assert offered("ytpiped config ") == ["check", "show"]
    assert offered("ytpiped status --") == ["--help", "--hosts", "--interval", "--json", "--watch"]
    assert offered("ytpiped retry --stage tr") == ["transcribe"]
    assert offered("ytpiped --set download.max_att") == ["download.max_attempts="]
