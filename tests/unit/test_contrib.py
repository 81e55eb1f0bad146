"""contrib/: the Prometheus alert rules and the Grafana dashboard query only metrics that
ytpiped exports; promtool (where installed) checks the rules and runs their unit tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics_status import full_status
from ytpiped import metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "contrib" / "prometheus" / "alerts.yml"
ALERTS_TEST = Path(__file__).resolve().parent / "data" / "alerts_test.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "ytpiped.json"
#: Prometheus' own series beside the exported ones
PROMETHEUS_OWN = {"up"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("_sum", "_count"), "info": ("_info",)}
_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}


def exported(tmp_path: Path) -> set[str]:
    """Every series name one scrape of a busy daemon can have."""
    text = metrics.exposition(full_status(), tmp_path)[0].decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = _SUFFIXES.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
    return names


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression selects (functions, keywords, label names, ranges
    and grouping clauses left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    found = re.findall(r"(?<![\w.$])[a-zA-Z_:][\w:]*\b(?!\s*\()", e)
    return {n for n in found if n not in _NOT_METRICS}


def test_metric_names_of_promql() -> None:
    assert metric_names('sum by (instance) (rate(a_total{x="y",z=~"$q"}[5m])) * 60 > 5e9'
                        ' unless on (instance) b_bytes / c') == {"a_total", "b_bytes", "c"}
    assert metric_names("histogram_quantile(0.95, sum by (le, stage) "
                        "(rate(h_bucket[$__rate_interval])))") == {"h_bucket"}


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_query_only_exported_metrics(tmp_path: Path) -> None:
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    # bot check, breaker open, no progress for an hour, disk low, LLM down (issue 15)
    assert {"YtpipedBotCheck", "YtpipedDownloadBreakerOpen", "YtpipedNoProgress",
            "YtpipedDiskLow", "YtpipedLLMDown"} <= names
    known = exported(tmp_path) | PROMETHEUS_OWN
    for rule in rules:
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= known, (rule["alert"], used - known)
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", ALERTS_TEST.name]):
        r = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60,
                           cwd=ALERTS_TEST.parent, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "SUCCESS" in r.stdout


def test_dashboard_queries_only_exported_metrics(tmp_path: Path) -> None:
    dash = json.loads(DASHBOARD.read_text())
    known = exported(tmp_path)
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = []
    for panel in panels:
        assert panel["title"] and panel["type"] in ("stat", "timeseries")
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["refId"] and target["datasource"]["uid"] == "${datasource}"
            exprs.append((panel["title"], target["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"]["query"])
            assert m is not None, var
            exprs.append((var["name"], m.group(1)))
    for title, expr in exprs:
        used = metric_names(expr)
        assert used and used <= known, (title, used - known)
        if title != "instance":  # every selector follows the instance picker
            assert expr.count('instance=~"$instance"') == len(re.findall(r"\{", expr)), title


def test_dashboard_panels_tile_the_grid() -> None:
    dash = json.loads(DASHBOARD.read_text())
    taken: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                 for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_compose_file_sets_only_real_config_keys_and_two_hosts() -> None:
    """contrib/compose: PostgreSQL plus two ytpiped hosts, each YTPIPED_* variable a key
    that loads (a typo there would be a warning the user never sees), no password in the
    store URL, a host id of its own per host."""
    from ytpiped import config

    doc = yaml.safe_load((ROOT / "contrib" / "compose" / "compose.yaml").read_text())
    services = doc["services"]
    hosts = {name: s for name, s in services.items() if name.startswith("ytpiped")}
    assert set(services) == {"db", *hosts} and len(hosts) == 2
    ids = set()
    for s in hosts.values():
        env = {k: str(v) for k, v in s["environment"].items()}
        settings = config.load(env=env)
        assert not settings.warnings
        assert settings.store.url.startswith("postgresql://") and "@db:" in settings.store.url
        assert ":" not in settings.store.url.split("//", 1)[1].split("@", 1)[0]  # no password
        ids.add(settings.daemon.host_id)
        assert s["depends_on"]["db"]["condition"] == "service_healthy"
    assert len(ids) == 2
