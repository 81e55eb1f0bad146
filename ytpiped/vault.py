"""`ytpiped export --format md`: an Obsidian-friendly vault of Markdown notes.

    OUT/index.md                 every video, by channel
    OUT/videos/<slug>.md         one note per video, named by a slug of its title (its id
                                 when it has none): YAML front matter (title, channel, date,
                                 url, video_id, tags, state), the summary, the claims with
                                 timestamp links, [[links]] to its concepts and people
    OUT/concepts/<slug>.md       one note per concept mined, linking back to its videos
    OUT/people/<slug>.md         one note per person mined, likewise

Links are written `[[folder/slug|Shown name]]`, so each resolves to exactly one note
whatever two names share. File names are lower-case letters, digits and dashes (any
script), at most SLUG_MAX characters, never a name Windows reserves, unique without case.
The front matter's values are JSON strings, which YAML reads as they are.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ytpiped.search import deep_link, stamp

SLUG_MAX = 60
#: names Windows will not create, with any extension
RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                      *(f"lpt{i}" for i in range(10))})
_NOT_WORD = re.compile(r"[^\w]+|_+")


def slug(text: str, fallback: str = "note") -> str:
    """A file-name-safe slug of `text` (letters of any script, digits, dashes), or of
    `fallback` when `text` has none."""
    for candidate in (text, fallback, "note"):
        s = unicodedata.normalize("NFKC", candidate).lower()
        s = _NOT_WORD.sub("-", s).strip("-")
        s = s[:SLUG_MAX].rstrip("-")
        if s:
            return s + "-" if s in RESERVED else s
    return "note"  # pragma: no cover - "note" is a slug


def yaml_value(v: Any) -> str:
    """A front-matter value: JSON (strings quoted and escaped) is valid YAML."""
    return json.dumps(v, ensure_ascii=False)


def front_matter(fields: Mapping[str, Any]) -> str:
    return "---\n" + "".join(f"{k}: {yaml_value(v)}\n" for k, v in fields.items()) + "---\n"


def inline(text: Any) -> str:
    """Free text on one line of Markdown, with no [[ ]] that Obsidian would read as a
    link."""
    return " ".join(str(text or "").split()).replace("[", "\\[").replace("]", "\\]")


def link(folder: str, name: str, shown: str) -> str:
    return f"[[{folder}/{name}|{inline(shown).replace('|', '-')}]]"


@dataclass
class Video:
    """One video as the vault shows it."""

    id: str
    doc: dict[str, Any]
    title: str
    url: str | None = None
    kind: str = "generic"
    channel: str | None = None
    date: str | None = None  # YYYY-MM-DD
    state: str | None = None
    duration_s: float | None = None
    tags: tuple[str, ...] = ()  # the video's own (its metadata)


@dataclass
class Entity:
    """A concept or a person, with what each video said of it."""

    name: str
    mentions: list[tuple[Video, str]] = field(default_factory=list)


def names(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """key -> unique slug, in the order given: the first of a slug keeps it, later ones
    get their key appended (`title`, then `title-<id>`)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for key, wanted in items:
        name = wanted
        if name in taken:
            name = f"{wanted[:SLUG_MAX - 18]}-{slug(key)[:16]}"
        n = 2
        while name in taken:
            name = f"{wanted[:SLUG_MAX - 6]}-{n}"
            n += 1
        taken.add(name)
        out[key] = name
    return out


class Vault:
    """The notes of a set of videos; `files()` -> relative path -> Markdown."""

    def __init__(self, videos: list[Video]) -> None:
        self.videos = sorted(videos, key=lambda v: v.id)
        self.video_names = names((v.id, slug(v.title, v.id)) for v in self.videos)
        self.concepts = self._entities("concepts", "term", "explanation")
        self.people = self._entities("people", "name", "role")
        self.concept_names = names((k, slug(e.name)) for k, e in self.concepts.items())
        self.people_names = names((k, slug(e.name)) for k, e in self.people.items())

    def _entities(self, key: str, name_key: str, about_key: str) -> dict[str, Entity]:
        found: dict[str, Entity] = {}
        for v in self.videos:
            for item in v.doc.get(key) or []:
                if not isinstance(item, Mapping):
                    continue
                name = " ".join(str(item.get(name_key) or "").split())
                if not name:
                    continue
                entity = found.setdefault(name.lower(), Entity(name))
                if all(seen is not v for seen, _ in entity.mentions):
                    entity.mentions.append((v, str(item.get(about_key) or "")))
        return dict(sorted(found.items()))

    def video_path(self, v: Video) -> str:
        return f"videos/{self.video_names[v.id]}.md"

    def files(self, only: set[str] | None = None) -> dict[str, str]:
        """Every note (video notes only for the ids in `only`, when given)."""
        out = {"index.md": self.index()}
        for v in self.videos:
            if only is None or v.id in only:
                out[self.video_path(v)] = self.video_note(v)
        for folder, entities, nm, kind in (("concepts", self.concepts, self.concept_names,
                                            "concept"),
                                           ("people", self.people, self.people_names,
                                            "person")):
            for key, e in entities.items():
                out[f"{folder}/{nm[key]}.md"] = self.entity_note(e, kind)
        return out

    def video_note(self, v: Video) -> str:
        doc = v.doc
        ev = doc.get("evaluation") if isinstance(doc.get("evaluation"), Mapping) else {}
        tags = ["ytpiped", "video"] + ([f"channel/{slug(v.channel)}"] if v.channel else []) \
            + [f"tag/{slug(t)}" for t in v.tags]
        lines = [front_matter({"title": v.title, "channel": v.channel, "date": v.date,
                               "url": v.url, "video_id": v.id, "tags": tags,
                               "state": v.state}), f"# {inline(v.title)}", ""]
        about = [f"[Open the video]({v.url})" if v.url else ""]
        about += [inline(v.channel) if v.channel else "", v.date or "",
                  stamp(v.duration_s) if v.duration_s else ""]
        if any(about):
            lines += [" · ".join(a for a in about if a), ""]
        summary = (ev or {}).get("summary") or doc.get("summary")
        if summary:
            lines += ["## Summary", "", str(summary).strip(), ""]
        claims = [c for c in doc.get("claims") or []
                  if isinstance(c, Mapping) and c.get("duplicate_of") is None]
        lines += ["## Claims", ""]
        for c in claims:
            start = c.get("start") if isinstance(c.get("start"), int | float) else None
            when = stamp(start)
            if v.url and start is not None:
                when = f"[{when}]({deep_link(v.id, v.url, v.kind, start)})"
            imp = f" **{c['importance']}/10**" if c.get("importance") is not None else ""
            lines.append(f"- {when}{imp} ({inline(c.get('type') or 'other')}) "
                         f"{inline(c.get('text'))}")
            if c.get("evidence"):
                lines.append(f"  > {inline(c['evidence'])}")
        if not claims:
            lines.append("(none)")
        for title, folder, entities, nm in (
                ("Concepts", "concepts", self.concepts, self.concept_names),
                ("People", "people", self.people, self.people_names)):
            mine = [(k, e, what) for k, e in entities.items() for seen, what in e.mentions
                    if seen is v]
            if mine:
                lines += ["", f"## {title}", ""]
                lines += [f"- {link(folder, nm[k], e.name)}" + (f": {inline(what)}" if what
                                                               else "") for k, e, what in mine]
        prov = doc.get("provenance") if isinstance(doc.get("provenance"), Mapping) else {}
        if prov:
            raw = doc.get("tokens")
            tokens: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            spent = (f", tokens {tokens['prompt']} prompt + {tokens['completion']} completion"
                     if "prompt" in tokens and "completion" in tokens else "")
            lines += ["", f"_mined with {inline(prov.get('model'))}, evaluated with "
                          f"{inline(prov.get('eval_model'))}{spent}_"]
        return "\n".join(lines) + "\n"

    def entity_note(self, e: Entity, kind: str) -> str:
        lines = [front_matter({"title": e.name, "type": kind, "aliases": [e.name],
                               "tags": ["ytpiped", kind]}), f"# {inline(e.name)}", "",
                 "## Mentioned in", ""]
        for v, what in e.mentions:
            shown = link("videos", self.video_names[v.id], v.title)
            lines.append(f"- {shown}" + (f": {inline(what)}" if what else ""))
        return "\n".join(lines) + "\n"

    def index(self) -> str:
        lines = [front_matter({"title": "ytpiped", "tags": ["ytpiped"]}), "# Videos", ""]
        by_channel: dict[str, list[Video]] = {}
        for v in self.videos:
            by_channel.setdefault(v.channel or "", []).append(v)
        for channel in sorted(by_channel, key=lambda c: (c == "", c.lower())):
            lines += [f"## {inline(channel) or 'No channel'}", ""]
            for v in sorted(by_channel[channel], key=lambda v: (v.date or "", v.title)):
                lines.append(f"- {link('videos', self.video_names[v.id], v.title)}"
                             + (f" ({v.date})" if v.date else ""))
            lines.append("")
        return "\n".join(lines)
