"""Time ``thighseg segment`` of this checkout against an earlier commit on the same CT, runs
alternating (a shared machine's load drifts: alternating puts both under the same drift).

    .venv/bin/python scripts/ab_segment.py --old 6e0beac [--rounds 3] [--slices 500]

The old commit is checked out with ``git worktree`` into a temporary folder and run with this
venv (its dependencies must still be installed). Prints one JSON object: per side the
end-to-end seconds of each run, the medians, the stages of the median run, and new / old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(tree: Path, ct: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", "segment", str(ct), "--out", str(out),
                        "--device", "cpu", "--progress", "json"], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                       capture_output=True, text=True, encoding="utf-8", check=True)
    wall = time.perf_counter() - t0
    done = json.loads(r.stdout.strip().splitlines()[-1])
    return {"end_to_end_s": round(wall, 2), "stages": done["stages"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the earlier commit")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slices", type=int, default=500)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import SimpleITK as sitk

    from ThighMuscleSegLib.cli.bench import bench_ct

    with tempfile.TemporaryDirectory(prefix="thighseg-ab-") as tmp:
        work = Path(tmp)
        old_tree = work / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_tree), args.old],
                       check=True, capture_output=True)
        try:
            ct = work / "ct.nii"
            sitk.WriteImage(bench_ct(args.slices, 42), str(ct))
            runs: dict[str, list[dict]] = {"old": [], "new": []}
            for side, tree in (("old", old_tree), ("new", REPO)):  # warm-up: caches, the ONNX export
                _run(tree, ct, work / f"warm_{side}")
            for k in range(args.rounds):
                for side, tree in (("old", old_tree), ("new", REPO)):
                    runs[side].append(_run(tree, ct, work / f"{side}_{k}"))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)],
                           capture_output=True)
    result = {"old_commit": args.old, "ct_slices": args.slices, "rounds": args.rounds}
    for side, rs in runs.items():
        walls = [r["end_to_end_s"] for r in rs]
        median_run = sorted(rs, key=lambda r: r["end_to_end_s"])[len(rs) // 2]
        result[side] = {"end_to_end_s": walls, "median_s": statistics.median(walls), "stages": median_run["stages"]}
    result["new_over_old"] = round(result["new"]["median_s"] / result["old"]["median_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
