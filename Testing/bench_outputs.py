"""Benchmark (not a test): time every output writer on a 512×512×500 synthetic case.

    /work/main/.venv/bin/python Testing/bench_outputs.py [--size 512,512,500] [--dicom-seg]
"""

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

from synthetic_thighs import synthetic_thighs  # noqa: E402
from ThighMuscleSegLib.measure import muscle_volumes, write_volumes_csv  # noqa: E402
from ThighMuscleSegLib.measure.femur import FemurLine  # noqa: E402
from ThighMuscleSegLib.measure.profiles import csa_profiles  # noqa: E402
from ThighMuscleSegLib.measure.slabs import slab_table  # noqa: E402
from ThighMuscleSegLib.render_profiles import write_profiles_png  # noqa: E402
from ThighMuscleSegLib.render import write_report_png  # noqa: E402
from ThighMuscleSegLib.segnrrd import read_seg_nrrd, write_seg_nrrd  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="512,512,500")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split(","))
    ct, labels, disagreement = synthetic_thighs(size, (0.8, 0.8, 1.0))
    centre = ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ct.GetSize()])
    tilted = (0.1, 0.05, 0.9937)  # femur axes a few degrees off the slices: t per voxel, not per slice
    lines = {side: FemurLine(side, tuple(centre), tilted, -200.0, 200.0, (-180.0, 180.0)) for side in ("right", "left")}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        for name, fn in (
            ("slab_table", lambda: slab_table(ct, labels, lines)),
            ("csa_profiles + png", lambda: write_profiles_png(csa_profiles(slab_table(ct, labels, lines), lines),
                                                              out / "profiles.png")),
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
        tracemalloc.start()
        slab_table(ct, labels, lines)
        print(f"slab_table peak numpy memory: {tracemalloc.get_traced_memory()[1] / 1e6:.0f} MB")
        tracemalloc.stop()
        print(f"seg.nrrd size: {(out / 'segmentation.seg.nrrd').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
