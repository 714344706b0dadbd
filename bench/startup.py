"""How long a `vesalius` command takes to start, against two baselines measured in the same run.

    .venv/bin/python bench/startup.py [--repeats 7] [--label after] [--kb-dir DIR] [--out bench/STARTUP.md]

Each row is the median wall time of `--repeats` fresh processes, and its ratio to `python -c pass` (the floor
of any Python command) and to `python -c "import torch"` (what every command paid before the lazy imports).
The commands run with a private home whose knowledge base is built first (the starter base), or with the built
base `--kb-dir` names (the default base of README command 1), so `kb show`, `kb search` and `ask` read an index
rather than build one; `ask` is on the CT slice that ships with pydicom, with no model server.
`--label` names the run; the table keeps one section per label, so a before and an after sit side by side.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from pydicom.data import get_testdata_file

QUESTION = "Is there a pleural effusion on this CT?"


def commands(vesalius: str, study: str) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        'python -c "import torch"': [py, "-c", "import torch"],
        "vesalius --help": [vesalius, "--help"],
        "vesalius schema": [vesalius, "schema"],
        "vesalius kb show C0032285": [vesalius, "kb", "show", "C0032285"],
        'vesalius kb search "high blood pressure"': [vesalius, "kb", "search", "high blood pressure"],
        # A misspelt word reads the speller's lookup table as well.
        'vesalius kb search "chrons disease"': [vesalius, "kb", "search", "chrons disease"],
        "vesalius ask --study CT_small.dcm (cold)": [vesalius, "ask", "--study", study, QUESTION],
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return elapsed


def section(label: str, rows: list[tuple[str, float]], repeats: int) -> str:
    floor = dict(rows)["python -c pass"]
    torch = dict(rows)['python -c "import torch"']
    out = [
        f"## {label}",
        "",
        (
            f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"median of {repeats} processes."
        ),
        "",
        "| command | median s | × `python -c pass` | × `import torch` |",
        "|---|---:|---:|---:|",
    ]
    out += [f"| `{name}` | {s:.3f} | {s / floor:.1f} | {s / torch:.2f} |" for name, s in rows]
    return "\n".join(out) + "\n"


def write(out: Path, label: str, text: str) -> None:
    head = (__doc__ or "").split("\n\n")[0].strip()
    current = out.read_text() if out.exists() else f"# Start-up\n\n{head}\n"
    parts = re.split(r"(?m)^(?=## )", current)
    kept = [p for p in parts[1:] if not p.startswith(f"## {label}\n")]
    out.write_text(parts[0].rstrip() + "\n\n" + "\n".join(p.rstrip() + "\n" for p in [*kept, text]))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("STARTUP.md"))
    parser.add_argument("--kb-dir", type=Path, help="a built knowledge base to read (default: build the starter)")
    args = parser.parse_args()
    vesalius = str(Path(sys.executable).with_name("vesalius"))
    study = get_testdata_file("CT_small.dcm")
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VESALIUS_")}
        env.update(HOME=tmp, VESALIUS_CACHE_DIR=f"{tmp}/cache", VESALIUS_DATA_DIR=f"{tmp}/data")
        if args.kb_dir:
            env["VESALIUS_KB_DIR"] = str(args.kb_dir.resolve())
        print("building the knowledge base once ...", file=sys.stderr)
        timed([vesalius, "ask", "--study", study, QUESTION], env)  # builds the starter base and the de-id key
        rows = []
        for name, argv in commands(vesalius, study).items():
            timed(argv, env)  # warm the page cache: every row is a warm-disk, fresh-process start
            times = [timed(argv, env) for _ in range(args.repeats)]
            rows.append((name, statistics.median(times)))
            print(f"{name}: {rows[-1][1]:.3f} s", file=sys.stderr)
    write(args.out, args.label, section(args.label, rows, args.repeats))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
