"""Can CI gate on llmecon's numbers? Identical runs, back to back, and a planted slowdown, measured.

What it does, on this machine, with the checkout's code (each bench a fresh `python -m llmecon bench`
process, as CI runs it):

1. ``--runs`` back-to-back identical default ``llmecon bench --model tiny`` runs (``--rounds`` and
   ``--precision`` passed through when given): the max/min of each phase's tokens/s over the runs, and each
   run's wall time;
2. ``llmecon compare --max-drop 10%`` over the consecutive pairs of those runs: how many verdicts are
   regression / inconclusive / no change (a gate that cries wolf on identical code is useless); and the same
   with three runs a side pooled, as a folder of runs is;
3. ``--busy`` runs of the same bench pinned to one CPU with a busy loop pinned beside it, each compared with
   one of the normal runs: how many are found to be regressions (a gate that misses a halved CPU is useless);
4. with ``--main-job``, one ``llmecon run`` timed.

It prints a table per step and a summary last. Figures are of this machine at this moment: rerun before you
believe a difference, and compare settings side by side in one invocation (``--rounds`` per invocation).

    PYTHONPATH=src python benchmarks/noise.py [--runs 10] [--busy 10] [--rounds R] [--precision P] [--threads N]
                                             [--main-job]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmecon.api import compare, load_results

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("prefill", "decode", "train")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def bench(out: Path, extra: list[str], *, pin_cpu: int | None = None) -> tuple[Path, float]:
    """One default tiny bench in a fresh process; (run folder, wall seconds). pin_cpu: run it on that CPU only."""
    cmd = [sys.executable, "-m", "llmecon", "bench", "--model", "tiny", "--out", str(out), "--quiet", *extra]
    preexec = (lambda: os.sched_setaffinity(0, {pin_cpu})) if pin_cpu is not None else None
    t0 = time.perf_counter()
    subprocess.run(cmd, env=_env(), check=True, stdout=subprocess.DEVNULL, preexec_fn=preexec)
    wall = time.perf_counter() - t0
    (run,) = sorted((out / "runs").iterdir())
    return run, wall


def tokens_per_s(run: Path) -> dict[str, float]:
    frame = load_results([run]).frame
    return {str(r["phase"]): float(r["tokens_per_s"]) for _, r in frame.iterrows()}


def busy_loop(cpu: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])


def verdicts(base: Path, new: Path, max_drop: str) -> list[str]:
    return [r["verdict"] for r in compare(str(base), str(new), max_drop=max_drop)["rows"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--busy", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-drop", default="10%")
    ap.add_argument("--main-job", action="store_true")
    args = ap.parse_args()
    extra = (["--rounds", str(args.rounds)] if args.rounds else []) + (
        ["--precision", args.precision] if args.precision else []) + (
        ["--threads", str(args.threads)] if args.threads else [])
    cpus = sorted(os.sched_getaffinity(0))
    print(f"{len(cpus)} CPUs, load {os.getloadavg()[0]:.2f}; bench --model tiny {' '.join(extra) or '(defaults)'}")
    work = Path(tempfile.mkdtemp(prefix="llmecon-noise-"))

    runs, walls, tps = [], [], []
    for i in range(args.runs):
        run, wall = bench(work / f"run-{i:02d}", extra)
        runs.append(run)
        walls.append(wall)
        tps.append(tokens_per_s(run))
        print(f"  run {i + 1:2d}: {wall:5.1f} s  " + "  ".join(f"{p} {tps[-1][p]:>10,.0f} tok/s" for p in PHASES))
    spread = {p: max(t[p] for t in tps) / min(t[p] for t in tps) for p in PHASES}

    pair_verdicts = []
    for a, b in zip(runs, runs[1:]):
        pair_verdicts += verdicts(a, b, args.max_drop)
    counts = {v: pair_verdicts.count(v) for v in sorted(set(pair_verdicts))}
    # several runs per side: three runs pooled against the next three (a folder of runs pools their rounds)
    pooled = []
    for i in range(0, len(runs) - 5, 3):
        pooled += [r["verdict"] for r in compare([str(r) for r in runs[i:i + 3]], [str(r) for r in runs[i + 3:i + 6]],
                                                 max_drop=args.max_drop)["rows"]]
    pooled_counts = {v: pooled.count(v) for v in sorted(set(pooled))}

    busy_found, busy_verdicts = 0, []
    for i in range(args.busy):
        hog = busy_loop(cpus[0])
        try:
            run, wall = bench(work / f"busy-{i:02d}", extra, pin_cpu=cpus[0])
        finally:
            hog.kill()
            hog.wait()
        v = verdicts(runs[i % len(runs)], run, args.max_drop)
        busy_verdicts += v
        busy_found += all(x == "regression" for x in v)
        print(f"  busy {i + 1:2d}: {wall:5.1f} s  verdicts {', '.join(v)}")

    busy_pooled = []
    if args.busy >= 3 and len(runs) >= 3:  # three busy runs pooled against three normal ones
        busy_runs = sorted(work.glob("busy-*/runs/*"))[:3]
        busy_pooled = [r["verdict"] for r in compare([str(r) for r in runs[:3]], [str(r) for r in busy_runs],
                                                     max_drop=args.max_drop)["rows"]]

    main_wall = None
    if args.main_job:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmecon", "run", "--out", str(work / "main-job"), "--quiet"],
                       env=_env(), check=True, stdout=subprocess.DEVNULL)
        main_wall = time.perf_counter() - t0

    print()
    print(f"identical runs: {args.runs}; max/min tokens/s per phase: "
          + ", ".join(f"{p} {spread[p]:.3f}" for p in PHASES) + "   (target <= 1.10)")
    print(f"compare --max-drop {args.max_drop} over {len(runs) - 1} consecutive pairs ({len(pair_verdicts)} rows): "
          + ", ".join(f"{v} {n}" for v, n in counts.items()) + "   (target: no regression)")
    if pooled:
        print(f"the same, three runs a side pooled ({len(pooled)} rows): "
              + ", ".join(f"{v} {n}" for v, n in pooled_counts.items()))
    if args.busy:
        print(f"one CPU shared with a busy loop, against a normal run: {busy_found}/{args.busy} runs a regression "
              f"in every phase ({busy_verdicts.count('regression')}/{len(busy_verdicts)} rows)   (target 10/10)")
    if busy_pooled:
        print(f"the same, three runs a side pooled: {', '.join(busy_pooled)}")
    print(f"default bench wall time: median {sorted(walls)[len(walls) // 2]:.1f} s, max {max(walls):.1f} s "
          "(target < 60 s)" + (f"; llmecon run {main_wall:.1f} s (target < 120 s)" if main_wall else ""))
    print(f"runs kept in {work}")


if __name__ == "__main__":
    main()
