"""What the LLM must answer, as pydantic models; their JSON schemas go in `format=`.

The schema title (the class name) tells FakeOllama which answer to build. A change to a
schema or prompt text changes its `prompt_version`, which every output records, so stale
results can be found and mined again (`ytpiped remine`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

M = TypeVar("M", bound=BaseModel)

#: the longest evaluation summary a grammar-constrained server may write (characters): a
#: model that runs on would otherwise write until the answer-token cap cuts the JSON off.
#: In the schema only (llama.cpp's and Ollama's grammars stop the string there); a longer
#: summary from a server without a grammar is kept. Above ~1500 llama.cpp refuses to
#: build the grammar (each character is one nested rule).
SUMMARY_MAX_CHARS = 1000

#: the most items of each list a mining answer may have (the schema's maxItems, also said
#: in the prompt): a small model that runs on (SmolLM2 at temperature 0) would otherwise
#: list until mine.answer_tokens cuts the JSON off, on every try alike. Chosen so the
#: fullest answer (~70 tokens a claim, ~20 a person, ~30 a concept) stays well within the
#: default answer_tokens (1024). A grammar stops the list there; a longer list from a
#: server without one is cut to the bound, and recorded like a clamped number.
MAX_CLAIMS = 6
MAX_PEOPLE = 4
MAX_CONCEPTS = 3
MAX_TOPICS = 8
#: the most claims one evaluation request ranks: ~20 tokens each beside a summary of up to
#: SUMMARY_MAX_CHARS (~250 tokens). A video with more claims is ranked in parts of at most
#: this many (stages.evaluate), the first with the summary (Evaluation), the rest without
#: (Ranking)
MAX_RANKED = 25
#: the longest name, role or term (characters), in the schema only like SUMMARY_MAX_CHARS:
#: SmolLM2 also runs on inside such a short field until the answer is cut
NAME_MAX_CHARS = 100
ROLE_MAX_CHARS = 200


@dataclass(frozen=True)
class Clamp:
    """A number the model gave outside the schema's range, replaced by the nearest bound;
    for a list longer than its maxItems, its length and the bound it was cut to."""

    field: str
    value: float
    clamped: float


def clamped(value: Any, lo: float, hi: float, info: ValidationInfo) -> Any:
    """A grammar that enforces the schema (llama.cpp's) leaves number bounds out, so a
    model may answer 5 for a confidence in [0, 1] or 0 for an importance in [1, 10]: the
    value is clamped into range rather than failing the window, and each clamp is added to
    the validation context's "clamped" list (when given) for the caller to log and count."""
    if not isinstance(value, int | float) or isinstance(value, bool) or lo <= value <= hi:
        return value
    new = min(hi, max(lo, value))
    ctx = info.context
    if isinstance(ctx, dict) and isinstance(ctx.get("clamped"), list):
        ctx["clamped"].append(Clamp(str(info.field_name), float(value), float(new)))
    return new


def capped(value: Any, most: int, info: ValidationInfo) -> Any:
    """A list longer than `most` (the schema's maxItems) cut to its first `most` items,
    recorded in the validation context's "clamped" list like a clamped number. The items
    cut off are not validated: one bad item past the bound does not fail the answer."""
    if not isinstance(value, list) or len(value) <= most:
        return value
    ctx = info.context
    if isinstance(ctx, dict) and isinstance(ctx.get("clamped"), list):
        ctx["clamped"].append(Clamp(str(info.field_name), float(len(value)), float(most)))
    return value[:most]


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
    def _clamped(cls, value: Any, info: ValidationInfo) -> Any:
        return clamped(value, 0.0, 1.0, info)


class Person(_Strict):
    name: str = Field(min_length=1, json_schema_extra={"maxLength": NAME_MAX_CHARS})
    role: str = Field(description="who they are or why mentioned; may be empty",
                      json_schema_extra={"maxLength": ROLE_MAX_CHARS})


class Concept(_Strict):
    term: str = Field(min_length=1, json_schema_extra={"maxLength": NAME_MAX_CHARS})
    explanation: str = Field(description="what it means here; may be empty")


class WindowResult(_Strict):
    """Answer to one mining window."""

    claims: list[Claim] = Field(max_length=MAX_CLAIMS)
    people: list[Person] = Field(max_length=MAX_PEOPLE)
    concepts: list[Concept] = Field(max_length=MAX_CONCEPTS)

    @field_validator("claims", "people", "concepts", mode="before")
    @classmethod
    def _capped(cls, value: Any, info: ValidationInfo) -> Any:
        most = {"claims": MAX_CLAIMS, "people": MAX_PEOPLE, "concepts": MAX_CONCEPTS}
        return capped(value, most[str(info.field_name)], info)


class EpisodeSummary(_Strict):
    """Short summary made before mining, sent with every window as context."""

    summary: str = Field(min_length=1)
    topics: list[str] = Field(max_length=MAX_TOPICS)

    @field_validator("topics", mode="before")
    @classmethod
    def _capped(cls, value: Any, info: ValidationInfo) -> Any:
        return capped(value, MAX_TOPICS, info)


class Ranked(_Strict):
    id: int = Field(ge=0, description="the claim's number in the list")
    importance: int = Field(ge=1, le=10)
    duplicate_of: int | None = Field(description="number of the claim this one repeats, or null")

    @field_validator("importance", mode="before")
    @classmethod
    def _clamped(cls, value: Any, info: ValidationInfo) -> Any:
        return clamped(value, 1, 10, info)


class Evaluation(_Strict):
    """Answer to the per-video evaluation."""

    ranked: list[Ranked] = Field(max_length=MAX_RANKED)
    summary: str = Field(min_length=1, description="summary of the episode",
                         json_schema_extra={"maxLength": SUMMARY_MAX_CHARS})

    @field_validator("ranked", mode="before")
    @classmethod
    def _capped(cls, value: Any, info: ValidationInfo) -> Any:
        return capped(value, MAX_RANKED, info)


class Ranking(_Strict):
    """Answer to one more part of a video's claims (after the first, which the Evaluation
    ranks): importance and duplicates, no summary."""

    ranked: list[Ranked] = Field(max_length=MAX_RANKED)

    @field_validator("ranked", mode="before")
    @classmethod
    def _capped(cls, value: Any, info: ValidationInfo) -> Any:
        return capped(value, MAX_RANKED, info)


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


def parse_reply(model: type[M], raw: str, clamps: list[Clamp] | None = None) -> M:
    """Parse and validate; raises json.JSONDecodeError or ValidationError. Numbers clamped
    into the schema's range (and lists cut to their maxItems) are appended to `clamps`.
    Raw control characters inside strings (a newline) are accepted: llama-cpp-python's
    grammar lets them through (its string rule, unlike llama.cpp's, does not exclude them),
    and SmolLM2 writes them into the evaluation summary."""
    return model.model_validate(json.loads(raw, strict=False),
                                context={"clamped": clamps} if clamps is not None else None)
