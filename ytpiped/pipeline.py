"""The built-in pipeline: which stages `ytpiped run` starts by default."""

from __future__ import annotations

from ytpiped.config import Settings
from ytpiped.stages.base import Stage


def build_stages(settings: Settings) -> list[Stage]:
    """Stages in pipeline order. Each stage module lands with its own issue; until then
    the daemon runs the ones that exist."""
    from ytpiped.stages.analyze import AnalyzeStage

    stages: list[Stage] = [AnalyzeStage()]
    return stages
