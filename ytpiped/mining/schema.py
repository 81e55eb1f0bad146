"""What the LLM must answer, as pydantic models; their JSON schemas go in `format=`.

The schema title (the class name) tells FakeOllama which answer to build. A change to a
schema or prompt text changes its `prompt_version`, which every output records, so stale
results can be found and mined again (`ytpiped remine`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

M = TypeVar("M", bound=BaseModel)

ClaimType = Literal["factual", "causal", "normative", "forecast", "definition", "opinion",
                    "anecdote", "other"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Claim(_Strict):
    text: str = Field(min_length=3, description="the claim, self-contained, one sentence")
    type: ClaimType
    evidence: str = Field(min_length=3, description="verbatim quote from the transcript")
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("confidence", mode="before")
    @classmethod
    def _clamped(cls, value: Any) -> Any:
        """A grammar that enforces the schema (llama.cpp's) leaves number bounds out, so a
        model may answer 5 for "very sure": kept, clamped into [0, 1], not a failed window."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return min(1.0, max(0.0, float(value)))
        return value


class Person(_Strict):
    name: str = Field(min_length=1)
    role: str = Field(description="who they are or why mentioned; may be empty")


class Concept(_Strict):
    term: str = Field(min_length=1)
    explanation: str = Field(description="what it means here; may be empty")


class WindowResult(_Strict):
    """Answer to one mining window."""

    claims: list[Claim]
    people: list[Person]
    concepts: list[Concept]


class EpisodeSummary(_Strict):
    """Short summary made before mining, sent with every window as context."""

    summary: str = Field(min_length=1)
    topics: list[str]


class Ranked(_Strict):
    id: int = Field(ge=0, description="the claim's number in the list")
    importance: int = Field(ge=1, le=10)
    duplicate_of: int | None = Field(description="number of the claim this one repeats, or null")


class Evaluation(_Strict):
    """Answer to the per-video evaluation."""

    ranked: list[Ranked]
    summary: str = Field(min_length=1, description="long summary of the episode")


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent as Ollama's `format`."""
    return model.model_json_schema()


def prompt_version(models: Sequence[type[BaseModel]], *texts: str) -> str:
    """12 hex digits over the given schemas and prompt texts."""
    h = hashlib.sha256()
    for model in models:
        h.update(json.dumps(json_schema(model), sort_keys=True).encode())
    for t in texts:
        h.update(b"\0" + t.encode())
    return h.hexdigest()[:12]


def validation_message(exc: ValidationError | json.JSONDecodeError) -> str:
    """A short, model-readable description of why a reply was rejected."""
    if isinstance(exc, json.JSONDecodeError):
        return f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    parts = []
    for err in exc.errors()[:8]:
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "the reply does not match the schema: " + "; ".join(parts)


def parse_reply(model: type[M], raw: str) -> M:
    """Parse and validate; raises json.JSONDecodeError or ValidationError."""
    return model.model_validate(json.loads(raw))
