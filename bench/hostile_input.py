"""Time and memory a whole `vesalius ask` process takes to refuse (or read) hostile input, against a real question.

    .venv/bin/python bench/hostile_input.py [--repeats 3] [--out bench/HOSTILE.md]

Each case is a fresh process (imports, models, the knowledge base from a warm cache), as a user meets it. The
baseline is the same command on the CT slice bundled with pydicom, measured in the same run. Reported: the exit
code, the median wall time and the peak resident memory of the process, and both as ratios to the baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

from PIL import Image
from pydicom.data import get_testdata_file

VESALIUS = str(Path(sys.executable).with_name("vesalius"))
_ONE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, stdin=subprocess.DEVNULL)\n"
    "print(r.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
)


def zeros(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def zip_bomb(path: Path, gib: int) -> Path:
    chunk = bytes(16 * 1024**2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("slice.dcm", "w", force_zip64=True) as m:
        for _ in range(64 * gib):
            m.write(chunk)
    return path


def many_members(path: Path, count: int, mib: int) -> Path:
    chunk = bytes(mib * 1024**2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(count):
            z.writestr(f"{i}.dcm", chunk)
    return path


def big_png(path: Path, side: int) -> Path:
    Image.linear_gradient("L").resize((side, side)).save(path)
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


CASES: list[tuple[str, str, Callable[[Path], Path]]] = [
    ("baseline: CT_small.dcm", "a real question", lambda d: Path(get_testdata_file("CT_small.dcm"))),
    ("256 MiB file of zeros", "refused", lambda d: zeros(d / "zeros.dcm", 256 * 1024**2)),
    ("zip: one 2 GiB member of zeros", "refused", lambda d: zip_bomb(d / "bomb.zip", 2)),
    ("zip: eight 256 MiB members of zeros", "refused", lambda d: many_members(d / "eight.zip", 8, 256)),
    ("/dev/zero", "refused", lambda d: Path("/dev/zero")),
    ("a FIFO", "refused", lambda d: fifo(d / "pipe.dcm")),
    ("PNG 10000 x 10000", "read, downscaled", lambda d: big_png(d / "big.png", 10000)),
]


def run_once(path: Path, env: dict[str, str]) -> tuple[int, float, int]:
    cmd = [sys.executable, "-c", _ONE, VESALIUS, "ask", "--study", str(path), "Is there an effusion?"]
    out = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600).stdout.split()
    return int(out[0]), float(out[1]), int(out[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("HOSTILE.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VESALIUS_")}
        env |= {"HOME": str(tmp / "home"), "VESALIUS_CACHE_DIR": str(tmp / "cache")}
        run_once(Path(get_testdata_file("CT_small.dcm")), env)  # builds the starter knowledge base once
        for name, expect, make in CASES:
            path = make(tmp)
            runs = []
            for i in range(args.repeats):
                print(f"{name}: run {i + 1}/{args.repeats}", file=sys.stderr)
                runs.append(run_once(path, env))
            codes = sorted({r[0] for r in runs})
            rows.append((name, expect, codes, statistics.median(r[1] for r in runs), max(r[2] for r in runs)))
    base_s, base_rss = rows[0][3], rows[0][4]
    lines = [
        "# Hostile input: what refusing it costs a whole `vesalius ask` process",
        "",
        (
            f"{date.today()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
            f"median of {args.repeats} fresh processes · `.venv/bin/python bench/hostile_input.py`"
        ),
        "",
        "| input | expected | exit code | median wall s | x baseline | peak RSS MB | x baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, expect, codes, seconds, rss in rows:
        lines.append(
            f"| {name} | {expect} | {', '.join(map(str, codes))} | {seconds:.1f} | {seconds / base_s:.2f} | "
            f"{rss / 1e6:.0f} | {rss / base_rss:.2f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
