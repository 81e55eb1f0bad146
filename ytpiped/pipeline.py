"""The built-in pipeline: which stages `ytpiped run` starts by default."""

from __future__ import annotations

from ytpiped.clock import Clock
from ytpiped.config import Settings
from ytpiped.engines.base import Engine
from ytpiped.errors import ConfigError
from ytpiped.stages.base import Stage


def with_model(settings: Settings, model: str) -> Settings:
    """The settings with `model` on every slot (GPU and CPU)."""
    import dataclasses

    return dataclasses.replace(settings, transcribe=dataclasses.replace(
        settings.transcribe, model_gpu=model, model_cpu=model))


def build_engines(settings: Settings) -> list[Engine]:
    """One Whisper worker process per slot, from the hardware snapshot and the config."""
    from ytpiped import hardware
    from ytpiped.engines.base import batch_sizes, decode_options
    from ytpiped.engines.process import EngineSpec, ProcessEngine
    from ytpiped.scheduling import capacity

    cfg = settings.transcribe
    cap = capacity.compute(hardware.snapshot(cfg.reserved_vram_mb), cfg)
    engines: list[Engine] = []
    options, batch = decode_options(settings), batch_sizes(settings)
    for index, slots in enumerate(cap.gpu_slots):  # the ceiling; the stage uses fewer
        spec = EngineSpec(cfg.model_gpu, "transcribe.model_gpu", "cuda", index,
                          cfg.compute_type_gpu, batch_size=batch["gpu"],
                          allow_download=cfg.allow_download, options=options)
        engines += [ProcessEngine(spec) for _ in range(slots)]
    spec = EngineSpec(cfg.model_cpu, "transcribe.model_cpu", "cpu", 0, cfg.compute_type_cpu,
                      cpu_threads=cap.cpu_threads_per_slot, batch_size=batch["cpu"],
                      allow_download=cfg.allow_download, options=options)
    engines += [ProcessEngine(spec) for _ in range(cap.cpu_slots)]
    if not engines:
        why = "; ".join(cap.reasons)
        raise ConfigError(f"keys 'transcribe.gpu_slots'/'transcribe.cpu_slots': no "
                          f"transcription slot at all ({why})")
    return engines


def build_stages(settings: Settings, clock: Clock) -> list[Stage]:
    """Every runtime object of the pipeline, built here and handed to the stages that use
    it (mine and evaluate share one LLM runtime: one pool, one model gate, one pause);
    the stages in pipeline order."""
    from ytpiped.mining.runner import Runtime
    from ytpiped.stages.analyze import AnalyzeStage
    from ytpiped.stages.download import DownloadStage
    from ytpiped.stages.evaluate import EvaluateStage
    from ytpiped.stages.mine import MineStage
    from ytpiped.stages.transcribe import TranscribeStage

    llm = Runtime.from_config(settings.mine, clock)
    return [DownloadStage(), AnalyzeStage(settings=settings),
            TranscribeStage(settings, build_engines(settings), clock=clock,
                            engine_factory=lambda m: build_engines(with_model(settings, m))),
            MineStage(llm), EvaluateStage(llm)]
