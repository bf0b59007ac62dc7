"""Benchmark (not a test): time every output writer on a 512×512×500 synthetic case.

    /work/main/.venv/bin/python Testing/bench_outputs.py [--size 512,512,500] [--dicom-seg]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

from synthetic_thighs import synthetic_thighs  # noqa: E402
from ThighMuscleSegLib.measure import muscle_volumes, write_volumes_csv  # noqa: E402
from ThighMuscleSegLib.render import write_report_png  # noqa: E402
from ThighMuscleSegLib.segnrrd import read_seg_nrrd, write_seg_nrrd  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="512,512,500")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split(","))
    ct, labels, disagreement = synthetic_thighs(size, (0.8, 0.8, 1.0))
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        for name, fn in (
            ("muscle_volumes", lambda: muscle_volumes(ct, labels)),
            ("write_volumes_csv", lambda: write_volumes_csv(muscle_volumes(ct, labels), out / "volumes.csv")),
            ("write_seg_nrrd", lambda: write_seg_nrrd(labels, out / "segmentation.seg.nrrd")),
            ("read_seg_nrrd", lambda: read_seg_nrrd(out / "segmentation.seg.nrrd")),
            ("write_report_png", lambda: write_report_png(ct, labels, out / "report.png", disagreement=disagreement,
                                                          volumes=muscle_volumes(ct, labels))),
        ):
            t = time.perf_counter()
            fn()
            print(f"{name:20s} {time.perf_counter() - t:6.2f} s")
        print(f"seg.nrrd size: {(out / 'segmentation.seg.nrrd').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
