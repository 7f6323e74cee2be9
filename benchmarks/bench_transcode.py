"""Transcoding throughput: seconds of audio turned into browser media per second of wall time.

    .venv/bin/python -m benchmarks.bench_transcode [--repeat 3] [--workers 1,2,4] [--long 300]

Uses the real MixMonitor recordings of the Asterisk 22 captures (8 kHz mono WAV, 5-15 s each),
repeated, through the same path as the worker (decode with pydub, waveform, Opus/WebM with
ffmpeg, atomic write), once in a row and then with N executor threads in parallel; and one long
generated call.  Also prints the size ratio of the media to the source.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recordings.transcode import transcode, transcode_file  # noqa: E402

RECORDINGS = sorted((ROOT / "tests/fixtures/asterisk-22").glob("*/recordings/*.wav"))


def seconds_of(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def bench_serial(files: list[Path], media: Path) -> tuple[float, float, int]:
    audio, out_bytes = 0.0, 0
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        result, m = transcode_file(f, media, f"s{i}")
        assert m is not None, result.error
        audio += m.duration_seconds
        out_bytes += m.size_bytes
    return audio, time.perf_counter() - t0, out_bytes


async def bench_parallel(files: list[Path], media: Path, workers: int) -> tuple[float, float]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        t0 = time.perf_counter()
        done = await asyncio.gather(
            *(transcode(f, media, f"p{workers}-{i}", pool) for i, f in enumerate(files))
        )
        wall = time.perf_counter() - t0
    return sum(m.duration_seconds for _, m in done if m is not None), wall


def make_long(path: Path, seconds: int) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:a=0.2"]
        + ["-ar", "8000", "-ac", "1", "-c:a", "pcm_s16le", str(path)],
        check=True,
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="passes over the real recordings")
    ap.add_argument("--workers", default=f"1,2,{os.cpu_count() or 2},8")
    ap.add_argument("--long", type=int, default=300, help="seconds of the long call (0: skip)")
    args = ap.parse_args()
    files = RECORDINGS * args.repeat
    src_bytes = sum(f.stat().st_size for f in files)
    print(
        f"ffmpeg/libopus 16 kbit/s mono WebM; {len(files)} files, "
        f"{sum(seconds_of(f) for f in files):.0f} s of audio; {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "media"
        transcode_file(files[0], media, "warmup")
        audio, wall, out_bytes = bench_serial(files, media)
        print(
            f"single, in a row : {audio / wall:7.1f} s audio / s wall "
            f"({wall / len(files) * 1000:.0f} ms per file; media = "
            f"{out_bytes / src_bytes:.1%} of the WAV size)"
        )
        for n in sorted({int(x) for x in args.workers.split(",")}):
            audio, wall = asyncio.run(bench_parallel(files, media, n))
            print(f"{n:2d} executor threads: {audio / wall:7.1f} s audio / s wall")
        if args.long:
            long_src = make_long(Path(tmp) / "long.wav", args.long)
            t0 = time.perf_counter()
            _, m = transcode_file(long_src, media, "long")
            wall = time.perf_counter() - t0
            assert m is not None
            print(
                f"one {args.long} s call   : {m.duration_seconds / wall:7.1f} s audio / s wall "
                f"({wall:.2f} s, {m.size_bytes / 1024:.0f} KiB from "
                f"{long_src.stat().st_size / 1024:.0f} KiB)"
            )


if __name__ == "__main__":
    main()
