"""Tracker throughput: the burst capture (20 overlapping calls, 2328 events) repeated many
times with fresh ids, through the same path as the live link: bytes -> FrameReader (with
the tracker's skip filter) -> CallTracker.

    python benchmarks/bench_tracker.py [--repeat 50] [--capture PATH]

Prints events per second for the plain split, panoramisk's parser, our reader alone and
the full path, the calls produced, and the tracker's peak memory.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ami_bridge.facts import CallRecord  # noqa: E402
from ami_bridge.protocol import FrameReader  # noqa: E402
from ami_bridge.tracker import CallTracker  # noqa: E402
from config.settings import load_settings, pbx_profile  # noqa: E402

BURST = ROOT / "tests/fixtures/asterisk-22/11-burst-20-concurrent/raw.ami"
CHUNK = 4096  # a typical TCP read


def repeated_stream(path: Path, repeat: int) -> bytes:
    """The capture ``repeat`` times, each copy with its own uniqueids and linkedids."""
    raw = path.read_bytes()
    body = raw[raw.index(b"\r\n\r\n", raw.index(b"Response:")) + 4 :]  # drop banner+login
    ids = sorted(set(re.findall(rb"\b(\d{10})\.(\d+)\b", body)))
    epochs = sorted({e for e, _ in ids})
    copies = []
    for n in range(repeat):
        shifted = body
        for e in reversed(epochs):
            shifted = shifted.replace(e + b".", str(int(e) + 100_000 * (n + 1)).encode() + b".")
        copies.append(shifted)
    return b"".join(copies)


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def bench_split(data: bytes) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    for frame in data.decode().split("\r\n\r\n"):
        if frame:
            dict(line.split(": ", 1) for line in frame.split("\r\n") if ": " in line)
            n += 1
    return n, time.perf_counter() - t0


def bench_panoramisk(data: bytes) -> tuple[int, float] | None:
    try:
        from panoramisk.message import Message
    except ImportError:
        return None
    t0 = time.perf_counter()
    n = 0
    for frame in data.decode().split("\r\n\r\n"):
        if frame:
            Message.from_line(frame + "\r\n")
            n += 1
    return n, time.perf_counter() - t0


def bench_reader(parts: list[bytes]) -> tuple[int, float]:
    reader = FrameReader()
    t0 = time.perf_counter()
    n = sum(len(reader.feed(p)) for p in parts)
    return n, time.perf_counter() - t0


def bench_live_path(parts: list[bytes], events: int) -> tuple[int, float, int]:
    tracker = CallTracker(pbx_profile(load_settings(env={}, demo=True)))
    wants = tracker.wants
    reader = FrameReader(skip=lambda name, frame: not wants(name, frame))
    calls = 0
    clock = 0.0
    step = 30.0 / max(events, 1)  # the capture's ~30 s, spread over its events
    t0 = time.perf_counter()
    for part in parts:
        for msg in reader.feed(part):
            clock += step
            for fact in tracker.feed(msg, clock):
                if isinstance(fact, CallRecord):
                    calls += 1
    calls += sum(1 for f in tracker.flush() if isinstance(f, CallRecord))
    return calls, time.perf_counter() - t0, reader.frames


def peak_memory(parts: list[bytes]) -> int:
    tracemalloc.start()
    bench_live_path(parts, sum(p.count(b"\r\n\r\n") for p in parts))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--capture", type=Path, default=BURST)
    args = ap.parse_args()
    data = repeated_stream(args.capture, args.repeat)
    parts = chunks(data)
    events = data.count(b"\r\n\r\n")
    print(f"stream: {args.capture.name} x{args.repeat}: {events} frames, {len(data) / 1e6:.1f} MB")
    n, dt = bench_split(data)
    print(f"  plain Python split          {n / dt / 1000:8.1f} k events/s")
    pano = bench_panoramisk(data)
    if pano:
        print(f"  panoramisk Message parser   {pano[0] / pano[1] / 1000:8.1f} k events/s")
    n, dt = bench_reader(parts)
    print(f"  FrameReader (all parsed)    {n / dt / 1000:8.1f} k events/s")
    best = min((bench_live_path(parts, events) for _ in range(3)), key=lambda r: r[1])
    calls, dt, frames = best
    print(
        f"  live path: bytes->reader->tracker {frames / dt / 1000:8.1f} k events/s "
        f"({calls} calls, expected {20 * args.repeat})"
    )
    print(
        f"  peak memory of the live path: {peak_memory(parts) / 1e6:.1f} MB "
        f"(input stream {len(data) / 1e6:.1f} MB held separately)"
    )


if __name__ == "__main__":
    main()
