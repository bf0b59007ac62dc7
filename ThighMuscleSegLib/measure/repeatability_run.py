"""``make repeatability``: phantom rescan pairs -> segment -> change -> the SDC table.

Per body (``--select train`` seeds from ``--seed`` on, seeds used by no other target), scans
0, 1, 2, ... are made until two of them hold a femur end in common (known from the phantom's
true femur axis and field, so no scan is segmented in vain); those two are segmented with the
model (``pipeline.segment_ct``, ``write_outputs``: the files of ``thighseg segment``) and
compared (``change.compare``), and compared again on their true labels.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import SimpleITK as sitk

from .change import ChangeError, ResultTables, compare, load_result, tables_from_images
from .repeatability import DATA_FILE, DOC_FILE, differences, markdown, sdc_table, statistics

END_MARGIN_MM = 30.0  # the condyles' distal end / the head's top lie ~20-25 mm beyond the femur axis points
MAX_RESCANS = 4
METHOD = (
    "Each phantom body (adult population, `--select train`) is scanned twice: two scanner draws "
    "(`thighseg phantom --rescan K`) with their own leg pose, table position, field of view and field "
    "length (30 % partial), pixel size, slice thickness, noise, blur and vessel contrast; the body, its "
    "muscles and their attenuation are the same. When the two scans would hold no femur end in common "
    "(from the phantom's true geometry), the next rescan is taken instead. Both scans are segmented with "
    "the model and compared with `thighseg change` (aligned at a common femur end, over the femur range "
    "both cover). Per muscle, both sides pooled: the SD of the repeat differences, SEM = SD / sqrt(2), "
    "SDC = 1.96 * sqrt(2) * SEM (Weir 2005, J Strength Cond Res 19:231; de Vet et al. 2006, Health Qual "
    "Life Outcomes 4:54). \"true labels: SD\": the same differences from the phantoms' own labels, the part "
    "of the error that is the phantom's (the body resampled onto each scanner grid), not the segmentation's.")


def ends_in_field(params: dict) -> set[str]:
    """The femur ends a phantom's field holds on both sides (from its true geometry)."""
    z0 = params["origin"][2]
    z1 = z0 + params["slice_mm"] * (params["slices"] - 1)
    ends = {"knee", "hip"}
    for axis in params["femur_axis"].values():
        if axis["distal"][2] - END_MARGIN_MM <= z0:
            ends.discard("knee")
        if axis["proximal"][2] + END_MARGIN_MM >= z1:
            ends.discard("hip")
    return ends


def make_pair(seed: int, folder: Path, size: str, log) -> list[tuple[int, Path, dict]]:
    """The first two scans of the body with a femur end in common: (rescan K, case folder, params)."""
    from ..phantom.followup import FollowUp
    from ..phantom.synth import make_case
    from ..phantom.writer import write_case

    made: list[tuple[int, Path, dict]] = []
    for k in range(MAX_RESCANS + 1):
        case = make_case(seed, size=size, followup=FollowUp(rescan=k) if k else None)
        ends = ends_in_field(case.params)
        log(f"seed {seed} scan {k}: {case.params['slice_mm']:.2f} mm slices, field {case.params['field']}, "
            f"femur ends in the field: {', '.join(sorted(ends)) or 'none'}")
        if not ends:
            continue
        partner = next((m for m in made if ends & ends_in_field(m[2])), None)
        path = write_case(case, folder / f"scan_{k}")
        made.append((k, path, case.params))
        if partner is not None:
            return [partner, made[-1]]
    raise ChangeError(f"seed {seed}: no two of {MAX_RESCANS + 1} scans hold a femur end in common")


def segment_scan(case_dir: Path, model, device: str) -> tuple[ResultTables, ResultTables]:
    """(the segmentation's tables, the true labels' tables) of one phantom scan."""
    from .. import io as tio
    from ..pipeline import segment_ct, write_outputs

    ct = tio.read_ct(case_dir / "ct.nii.gz", thighs=True)
    result = segment_ct(ct, model, device=device)
    out = case_dir / "segment"
    write_outputs(result, out, overwrite=True)
    seg = load_result(out) if (out / "slabs.csv").is_file() else tables_from_images(ct, result.labels, result.frames)
    truth_labels = sitk.ReadImage(str(case_dir / "labels.nii.gz"))
    truth_labels.CopyInformation(ct)  # the phantom writes both on one grid
    truth = tables_from_images(ct, truth_labels, result.frames)
    return seg, ResultTables(seg.lines, truth.slabs, str(case_dir))  # the same femur lines for both


def run(out: Path, first_seed: int, bodies: int, model_path: Path, device: str, size: str, command: str) -> dict:
    from ..models import load_model
    from ..phantom.population import seeds_in

    t0 = time.perf_counter()
    log = lambda m: print(f"[{time.perf_counter() - t0:7.1f} s] {m}", file=sys.stderr, flush=True)  # noqa: E731
    model = load_model(model_path)
    seg_reports, truth_reports, notes, seeds = [], [], [], seeds_in("train", first_seed, bodies)
    for seed in seeds:
        try:
            (ka, pa, qa), (kb, pb, qb) = make_pair(seed, out / f"body_{seed}", size, log)
            log(f"seed {seed}: segmenting scans {ka} and {kb}")
            (sa, ta), (sb, tb) = segment_scan(pa, model, device), segment_scan(pb, model, device)
            rep, truth = compare(sa, sb), compare(ta, tb)
        except ChangeError as e:
            notes.append(f"seed {seed}: left out ({e})")
            log(notes[-1])
            continue
        seg_reports.append(rep)
        truth_reports.append(truth)
        ranges = "; ".join(f"{s} aligned at the {a.end} end, {a.common_mm[1] - a.common_mm[0]:.0f} mm in common"
                           for s, a in rep.alignments.items())
        notes.append(f"seed {seed}: scans {ka} and {kb} ({qa['slice_mm']:.2f} / {qb['slice_mm']:.2f} mm slices, "
                     f"fields {qa['field']} / {qb['field']}); {ranges}; largest volume difference: segmented "
                     f"{_largest(rep)}, true labels {_largest(truth)}")
        log(notes[-1])
        data = _write(out, seg_reports, truth_reports, notes, seeds, model_path, device, size, command, t0)
    return _write(out, seg_reports, truth_reports, notes, seeds, model_path, device, size, command, t0)


def _largest(report) -> str:
    m = max(report.muscles, key=lambda m: abs(m.volume_change_percent) if m.volume_change_percent == m.volume_change_percent
            else -1.0)
    return f"{m.side} {m.muscle.replace('_', ' ')} {m.volume_change_percent:+.1f} %"


def _write(out: Path, seg_reports, truth_reports, notes, seeds, model_path: Path, device: str, size: str,
           command: str, t0: float) -> dict:
    """The tables so far (after every pair: a run cut short still leaves its pairs' numbers)."""
    stats, truth_stats = statistics(differences(seg_reports)), statistics(differences(truth_reports))
    data = {"method": METHOD, "command": command, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores (2-core shared CPU), "
                       f"device {device}",
            "model": model_path.name, "size": size, "pairs": len(seg_reports), "seeds": f"{seeds[0]}-{seeds[-1]}",
            "seconds": round(time.perf_counter() - t0, 1), "sdc": sdc_table(stats), "statistics": stats,
            "truth_statistics": truth_stats, "pair_notes": notes}
    out.mkdir(parents=True, exist_ok=True)
    (out / "repeatability.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    (out / "repeatability.md").write_text(markdown(data), encoding="utf-8")
    return data


def _install(data: dict) -> None:
    DATA_FILE.write_text(json.dumps(data, indent=1), encoding="utf-8")
    DOC_FILE.write_text(markdown(data), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from ..defaults import default_model_path

    p = argparse.ArgumentParser(prog="python -m ThighMuscleSegLib.measure.repeatability_run", description=__doc__)
    p.add_argument("--out", type=Path, help="work folder (phantoms, segmentations, the tables)")
    p.add_argument("--install-from", type=Path, metavar="DIR",
                   help="only install DIR/repeatability.json (a finished or stopped run) and its markdown")
    p.add_argument("--seed", type=int, default=80000, help="first body seed (train bodies from here on)")
    p.add_argument("--bodies", type=int, default=6)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--size", choices=("full", "small"), default="full")
    p.add_argument("--install", action="store_true", help="copy the tables to ThighMuscleSegLib/data and docs/")
    a = p.parse_args(argv)
    if a.install_from is not None:
        data = json.loads((a.install_from / "repeatability.json").read_text(encoding="utf-8"))
        _install(data)
        print(f"installed {DATA_FILE} and {DOC_FILE}: {data['pairs']} pairs")
        return 0
    if a.out is None:
        p.error("--out is required")
    command = "python -m ThighMuscleSegLib.measure.repeatability_run " + " ".join(argv if argv is not None
                                                                                  else sys.argv[1:])
    data = run(a.out, a.seed, a.bodies, a.model or default_model_path(), a.device, a.size, command)
    if a.install:
        _install(data)
    print(f"{data['pairs']} pairs: volume SDC " + ", ".join(f"{m} {v['volume_percent']:.1f} %" for m, v in data["sdc"].items()
                                                          if v.get("volume_percent") is not None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
