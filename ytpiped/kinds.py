"""Error kinds that more than one module names (what `retry --kind` and `status` show).
The download stage's table of yt-dlp kinds lives in download/classify.py and the LLM's
in mining/llm.py; these are the ones the worker and the other stages share."""

from __future__ import annotations

BAD_AUDIO = "bad_audio"  # the file cannot be decoded
NO_AUDIO = "no_audio"  # decodable, but silence
DISK_FULL = "disk_full"  # no space for an output: a cooldown, no attempt spent
TRANSCRIPT_MISSING = "transcript_missing"  # mining found no transcript file
MINING_INCOMPLETE = "mining_incomplete"  # windows still unmined after every attempt
MODEL_UNAVAILABLE = "model_unavailable"  # a Whisper model could not be loaded
