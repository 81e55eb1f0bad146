"""pyproject.toml: the license in the current SPDX form, and every third-party module the
package imports declared as a dependency (not left to arrive with another one)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_license_is_an_spdx_expression_setuptools_understands() -> None:
    assert PROJECT["project"]["license"] == "MIT"
    setuptools = [r for r in PROJECT["build-system"]["requires"] if _name(r) == "setuptools"]
    assert setuptools == ["setuptools>=77"]  # the first version that reads SPDX expressions


def _imported_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "ytpiped").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ytpiped", "__future__"}


def test_every_imported_third_party_module_is_declared() -> None:
    declared = {_name(r) for r in PROJECT["project"]["dependencies"]}
    for extra in PROJECT["project"]["optional-dependencies"].values():
        declared |= {_name(r) for r in extra}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_modules()):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    assert {"httpx", "ctranslate2"} <= declared
