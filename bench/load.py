"""A bounded load test of `vesalius serve` on loopback: concurrent conversations asking questions for a fixed time.

    .venv/bin/python bench/load.py [--sessions 50] [--seconds 60] [--workers 1] [--think 0] [--kb-dir DIR]

One server (the embedded default: no model server; `--workers` processes) with a fresh data folder. Each session
has its own thread on the CT slice that ships with pydicom and asks questions (JSON answers) back to back, or, with
`--think T`, after a pause of 0.5-1.5 T seconds, as a person reading the answer would. Reported: answers, errors
(any status but 200, or a transport failure), latency p50/p99/max, the baseline of `GET /api/health` measured in
the same run on the idle server (and the p50's ratio to it), answers per second, and the server's resident memory
before and at its peak. The rate limit is lifted for the run: all sessions share one address.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
from pydicom.data import get_testdata_file

QUESTIONS = [
    "Is there anything abnormal?",
    "Is there a pleural effusion?",
    "What does this scan show?",
    "How sure is that?",
    "Which window was used?",
]


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (the workers), in MB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
            total += int(match.group(1)) if match else 0
        except OSError:
            pass
    return total / 1024


def start_server(data: Path, kb_dir: Path | None, workers: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VESALIUS_")}
    env |= {
        "HOME": str(data / "home"),
        "VESALIUS_DATA_DIR": str(data / "data"),
        "VESALIUS_CACHE_DIR": str(data / "cache"),
        "VESALIUS_SERVE_PORT": str(port),
        "VESALIUS_RATE_LIMIT_PER_MINUTE": "100000",
    }
    if kb_dir:
        env["VESALIUS_KB_DIR"] = str(kb_dir)
    log = (data / "server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "vesalius"), "serve", "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start: {(data / 'server.log').read_text()[-2000:]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(url: str, pid: int, sessions: int, seconds: float, think: float) -> dict[str, float]:
    limits = httpx.Limits(max_connections=sessions + 5)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
        study = (await http.post("/api/studies", files=[("files", ("ct.dcm", ct))])).json()["study_id"]
        threads = []
        for i in range(sessions):
            audience = "patient" if i % 2 else "clinician"
            created = await http.post("/api/threads", json={"study_id": study, "audience": audience})
            threads.append(created.json()["thread_id"])
        # Warm every worker (each loads its models on its first question) before anything is measured.
        await asyncio.gather(
            *(http.post(f"/api/threads/{t}/messages", json={"question": "Is this normal?"}) for t in threads[:8])
        )
        baseline = []
        for _ in range(100):
            started = time.perf_counter()
            await http.get("/api/health")
            baseline.append(time.perf_counter() - started)
        memory_before = rss_mb(pid)
        latencies: list[float] = []
        errors = 0
        peak = memory_before
        deadline = time.monotonic() + seconds

        async def session(thread: str, offset: int) -> None:
            nonlocal errors
            n = offset
            pause = random.Random(offset)  # the same think times on every run
            while time.monotonic() < deadline:
                if think:
                    await asyncio.sleep(pause.uniform(0.5 * think, 1.5 * think))
                started = time.perf_counter()
                try:
                    response = await http.post(
                        f"/api/threads/{thread}/messages", json={"question": QUESTIONS[n % len(QUESTIONS)]}
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok
                n += 1

        async def watch() -> None:
            nonlocal peak
            while time.monotonic() < deadline:
                peak = max(peak, rss_mb(pid))
                await asyncio.sleep(0.5)

        started = time.monotonic()
        await asyncio.gather(watch(), *(session(t, i) for i, t in enumerate(threads)))
        elapsed = time.monotonic() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "baseline": statistics.median(baseline),
        "per_second": len(latencies) / elapsed,
        "memory_before": memory_before,
        "memory_peak": peak,
    }


def title(sessions: int, seconds: float, workers: int, think: float) -> str:
    pace = f"a question every {think:g} s on average (after each answer)" if think else "questions back to back"
    return f"{sessions} sessions for {seconds:g} s, {pace}, {workers} worker{'s' if workers > 1 else ''}"


def table(r: dict[str, float], name: str) -> str:
    return "\n".join(
        [
            f"## {name}",
            "",
            (
                f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
                "no model server (the embedded default), CT_small.dcm."
            ),
            "",
            "| measure | value |",
            "|---|---:|",
            f"| answers | {r['requests']:.0f} ({r['per_second']:.1f} a second) |",
            f"| errors | {r['errors']:.0f} |",
            f"| latency p50 | {r['p50']:.2f} s ({r['p50'] / r['baseline']:.0f} x `GET /api/health`) |",
            f"| latency p99 | {r['p99']:.2f} s |",
            f"| latency max | {r['max']:.2f} s |",
            f"| `GET /api/health` median, idle (baseline) | {r['baseline'] * 1000:.1f} ms |",
            f"| server memory before / peak | {r['memory_before']:.0f} MB / {r['memory_peak']:.0f} MB |",
            "",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--think", type=float, default=0, help="mean seconds a session waits before each question")
    parser.add_argument("--kb-dir", type=Path, help="a built knowledge base (default: the starter base, built first)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("LOAD.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vesalius-load-") as tmp:
        process, url = start_server(Path(tmp), args.kb_dir, args.workers)
        try:
            print(f"{args.sessions} sessions for {args.seconds:g} s against {url} ...", file=sys.stderr)
            result = asyncio.run(run(url, process.pid, args.sessions, args.seconds, args.think))
        finally:
            process.terminate()
            process.wait(60)
    name = title(args.sessions, args.seconds, args.workers, args.think)
    section = table(result, name)
    print(section)
    header = "# Load on `vesalius serve`\n\nCommand: `.venv/bin/python bench/load.py --sessions N --seconds S`.\n\n"
    previous = args.out.read_text() if args.out.exists() else header
    kept = re.split(r"(?m)^## ", previous)
    others = [f"## {s}" for s in kept[1:] if not s.startswith(name + "\n")]
    args.out.write_text(kept[0] + "".join(others) + section)


if __name__ == "__main__":
    main()
