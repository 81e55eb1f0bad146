#!/usr/bin/env bash
# Regenerates the committed speech fixtures in ytpiped/testing/media/ (needs espeak-ng,
# sox and ffmpeg: apt-get install -y espeak-ng sox ffmpeg). Tests never run this.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/ytpiped/testing/media"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
say() { espeak-ng -v en-us -s 150 -w "$tmp/$1.raw.wav" "$2"; sox "$tmp/$1.raw.wav" -r 16000 -c 1 "$tmp/$1.wav"; }

say solar "Solar panels convert sunlight into electricity. The price of solar power fell by ninety percent in ten years. Cheap energy will change how cities are built."
say coffee "Coffee contains caffeine, which blocks adenosine in the brain. Drinking coffee late in the day reduces deep sleep. Most people should stop drinking coffee after noon."
say ocean "The ocean absorbs a quarter of the carbon dioxide that humans emit. Warmer water holds less oxygen. Coral reefs are dying because the ocean is getting warmer."
say memory1 "Sleep is when the brain stores new memories. Students who sleep after learning remember more the next day."
say memory2 "Exercise also improves memory. A short walk increases blood flow to the hippocampus."
say memory3 "Stress hormones make it harder to recall facts. Calm practice before an exam helps people remember."
# a longer episode (~70 s) with real pauses, so the chunk planner can cut at silences
sox "$tmp/memory1.wav" "$tmp/memory2.wav" "$tmp/memory3.wav" "$tmp/m.wav"
sox -n -r 16000 -c 1 "$tmp/gap.wav" trim 0 2.5
sox "$tmp/m.wav" "$tmp/gap.wav" "$tmp/solar.wav" "$tmp/gap.wav" "$tmp/ocean.wav" "$tmp/gap.wav" "$tmp/coffee.wav" "$tmp/long.wav"

ffmpeg -loglevel error -y -i "$tmp/solar.wav" -c:a libopus -b:a 24k "$out/solar.webm"
ffmpeg -loglevel error -y -i "$tmp/coffee.wav" -c:a aac -b:a 32k "$out/coffee.m4a"
ffmpeg -loglevel error -y -i "$tmp/ocean.wav" -c:a libmp3lame -b:a 32k "$out/ocean.mp3"
ffmpeg -loglevel error -y -i "$tmp/long.wav" -c:a libopus -b:a 24k "$out/long.opus"
cp "$tmp/memory1.wav" "$out/memory.wav"
# silence with a little noise: decodable, but no speech
sox -n -r 16000 -c 1 "$tmp/quiet.wav" synth 8 whitenoise vol 0.0005
ffmpeg -loglevel error -y -i "$tmp/quiet.wav" -c:a libopus -b:a 16k "$out/silence.webm"
# not audio at all, with an audio file's name
head -c 20000 /dev/urandom > "$out/broken.m4a"
# an audio file cut in the middle
head -c $(( $(stat -c %s "$out/ocean.mp3") / 3 )) "$out/ocean.mp3" > "$out/truncated.mp3"
echo "fixtures written to $out"
