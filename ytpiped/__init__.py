"""ytpiped: a long-running pipeline from YouTube URLs to transcripts and mined knowledge."""

from __future__ import annotations

__version__ = "0.1.0"
