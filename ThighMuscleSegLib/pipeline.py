"""The one direction of flow: read CT → frame each thigh → per-view inference → vote →
clean → de-crop → outputs. Each arrow is a call into its own module; this file only
sequences them and reports progress.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from . import framing
from . import io as tio
from .defaults import DEFAULT_BACK_INTERPOLATION
from .inference.device import device_name
from .inference.predict import predict_thighs
from .models import Model
from .outputs import StagedOutputs
from .progress import RenamedStages

# Overall progress weights (roughly the measured share of the time on a CPU).
SEGMENT_STAGES = {"read": 4, "frame": 6, "infer": 64,  # both thighs' views run together
                  "fuse right": 1, "clean right": 1, "fuse left": 1, "clean left": 1,
                  "unframe": 6, "quality": 7, "write": 9}
_TITLE = f"ThighMuscleSeg {__version__}"  # of report.png and profiles.png


@dataclass
class Segmentation:
    ct: sitk.Image
    labels: sitk.Image  # uint8, CT geometry: right 1-10, left 11-20
    disagreement: sitk.Image  # uint8, CT geometry: views whose vote differs from the result
    frames: list  # framing.ThighFrame: the analysed fields (each with the reach its views read beyond)
    device: str
    seconds: dict[str, float] = field(default_factory=dict)
    volumes: list = field(default_factory=list)  # measure.MuscleVolume rows, with their quality flags
    quality: list = field(default_factory=list)  # quality.MuscleQuality per muscle of each segmented side
    femur: dict = field(default_factory=dict)  # side -> measure.femur.FemurLine (write_outputs finds it when empty)
    slabs: object = None  # measure.slabs.SlabTable along those lines (write_outputs makes it when None)
    sums: object = None  # measure.composition.CompositionSums of ct and labels (volumes and composition)
    # pictures.Pictures begun in a forked child while the volumes were measured; write_outputs
    # takes it, or draws the pictures itself where there is none
    pictures: object = field(default=None, repr=False, compare=False)

    @property
    def verdicts(self) -> dict[str, dict]:
        """Per segmented side: its quality verdict sentence and the muscles to check."""
        from .quality import thigh_verdicts

        return thigh_verdicts(self.quality)

    @property
    def notes(self) -> list[str]:
        """What the user must be told: thighs cut by the scan, a thigh not found, muscles to check."""
        flagged = [v["verdict"] for v in self.verdicts.values() if v["to_check"]]
        return framing.notes_for_user(self.frames) + flagged


def segment_ct(ct: sitk.Image, model: Model, device: str = "auto", override=None, progress=None,
               fusion: str = "vote", back_interpolation: str = DEFAULT_BACK_INTERPOLATION,
               log=None, engine: str = "auto") -> Segmentation:
    """Muscles of both thighs of ``ct``, in ``ct``'s geometry (``engine``: see ``predict_thigh``)."""
    seconds: dict[str, float] = {}
    device, why = device_name(device)  # once per CT, so a fallback is reported once, not per thigh
    if why:
        (log or logging.getLogger(__name__).warning)(why)
    t0 = time.perf_counter()
    if progress is not None:
        progress.update("frame", 0.0, "finding the thighs")
    frames = framing.frame_thighs(ct, override=override, progress=progress)
    reading = framing.reading_frames(frames)  # each field lengthened where the scan goes on beyond it
    seconds["frame"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    grids = {frame.side: framing.to_grid(ct, frame, "linear") for frame in reading}
    seconds["grid"] = time.perf_counter() - t0

    def side_progress(side: str):
        return RenamedStages(progress, {s: f"{s} {side}" for s in ("fuse", "clean")}) if progress else None

    t0 = time.perf_counter()
    predictions = predict_thighs(grids, model, device=device, progress=progress, fusion=fusion, log=log,
                                 fuse_progress=side_progress, engine=engine,
                                 analysed=framing.analysed_slices(frames))
    seconds["infer"] = time.perf_counter() - t0  # replaced below by the views' own wall time
    del grids
    labels, disagreement = _back_into_ct(ct, predictions, reading, back_interpolation, seconds, progress)
    pictures = _pictures_begun(ct, labels, disagreement)  # drawn on the other core while this one measures
    try:
        t0 = time.perf_counter()
        if progress is not None:
            progress.update("quality", 0.0, "measuring along each femur and checking each muscle")
        femur, slabs, sums = measure_along_femur(ct, labels, frames)
        volumes, quality = assess_quality(ct, labels, {side: p.stats for side, p in predictions.items()}, sums)
        seconds["quality"] = time.perf_counter() - t0
    except BaseException:
        if pictures is not None:
            pictures.cancel()
        raise
    used_device = next(iter(predictions.values())).device if predictions else device
    return Segmentation(ct, labels, disagreement, frames, used_device, seconds, volumes, quality, femur=femur,
                        slabs=slabs, sums=sums, pictures=pictures)


def _back_into_ct(ct: sitk.Image, predictions: dict, reading: list, back_interpolation: str, seconds: dict,
                  progress) -> tuple[sitk.Image, sitk.Image]:
    """Both thighs' labels and disagreement maps put back into the CT; the views' and the
    de-crop's times into ``seconds``."""
    for side, pred in predictions.items():
        seconds["infer"] = pred.seconds.pop("infer", seconds["infer"])  # one wall time for both thighs' views
        for step, s in pred.seconds.items():
            seconds[f"{side} {step}"] = s
    t0 = time.perf_counter()
    if progress is not None:
        progress.update("unframe", 0.0, "putting the muscles back into the CT")
    labels, disagreement = framing.labels_and_map_to_ct({side: p.labels for side, p in predictions.items()},
                                                        {side: p.disagreement for side, p in predictions.items()},
                                                        reading, ct, back_interpolation)
    seconds["unframe"] = time.perf_counter() - t0
    return labels, disagreement


def measure_along_femur(ct: sitk.Image, labels: sitk.Image, frames: list) -> tuple[dict, object, object]:
    """Each thigh's femur line, the slabs of every muscle along it, and the composition sums:
    ``(femur, slabs, sums)``. One pass over the labelled voxels serves ``slabs.csv``, the
    profiles, ``volumes.csv`` and ``measurements.csv`` (the sums are the slabs' totals)."""
    from .measure.composition import composition_sums, sums_from_slabs
    from .measure.femur import femur_lines
    from .measure.slabs import slab_table
    from .measure.volumes import voxel_volume_cm3

    femur = femur_lines(ct, frames)
    slabs = slab_table(ct, labels, femur)
    # Labels come only from the frames' sides, and every frame has its line: the slabs hold every
    # labelled voxel (the other pass stays for a label map given without its frames).
    covered = bool(frames) and all(f.side in femur for f in frames)
    sums = sums_from_slabs(slabs, voxel_volume_cm3(labels)) if covered else composition_sums(ct, labels)
    return femur, slabs, sums


def assess_quality(ct: sitk.Image, labels: sitk.Image, stats: dict, sums=None) -> tuple[list, list]:
    """volumes.csv rows (with ``confidence`` and ``quality``) and the per-muscle quality flags;
    ``stats``: side -> inference.agreement.ClassStats of each segmented thigh; ``sums``: the
    ``measure.composition.composition_sums`` of ``ct`` and ``labels`` if made already."""
    from .measure import muscle_volumes
    from .measure.volumes import volume_rows
    from .quality import assess, with_quality

    volumes = muscle_volumes(ct, labels) if sums is None else volume_rows(sums.voxels, sums.hu_sum, sums.voxel_cm3)
    known = {s: st for s, st in stats.items() if st is not None}
    quality = assess(known, {v.label_value: v.volume_cm3 for v in volumes}) if known else []
    return with_quality(volumes, quality), quality


def write_outputs(result: Segmentation, out_dir: str | Path, *, dicom_files: list[str] | None = None,
                  overwrite: bool = False, progress=None, height_cm: float | None = None) -> list[Path]:
    """All outputs of ``thighseg segment``, staged so they appear together or not at all.
    ``height_cm``: the patient's height for volume / height² (default: DICOM Patient's Size).

    At once: the pictures (``pictures``: in a forked child where this process allows it, begun
    by ``segment_ct`` already, else in a thread here), each image file in its own thread (mostly
    compression and ITK, which leave Python's lock free), and here the measurements; only this
    thread reports progress."""
    from .heap import release_freed_memory
    from .measure import muscle_volumes, write_volumes_csv
    from .measure.femur import femur_lines
    from .measure.table import measurement_rows, write_measurements_csv

    release_freed_memory()  # what the segmentation freed, back before the outputs' buffers (heap.py)
    from .pictures import Pictures

    volumes = result.volumes or muscle_volumes(result.ct, result.labels)
    pictures, result.pictures = result.pictures, None  # begun pictures serve one write
    if pictures is None:  # before this function starts its threads: a child forks from this one alone
        pictures = Pictures(result.ct, result.labels, result.disagreement, _TITLE)
    try:
        with StagedOutputs(out_dir, overwrite=overwrite) as stage, \
                ThreadPoolExecutor(4, thread_name_prefix="thighseg-write") as pool:
            steps = ["writing slabs.csv and profiles.csv",
                     "writing labels.nii.gz, disagreement.nii.gz and segmentation.seg.nrrd",
                     "writing volumes.csv and measurements.csv", "drawing report.png and profiles.png"]

            def step(message: str) -> None:
                if progress is not None:
                    progress.update("write", steps.index(message) / len(steps), message)

            step(steps[0])
            result.femur = result.femur or femur_lines(result.ct, result.frames)
            profiles = write_along_femur(result.ct, result.labels, result.femur, stage.path, draw=False,
                                         slabs=result.slabs)[1]
            pictures.finish(volumes, result.notes, profiles)  # may fork: before this function's threads start
            step(steps[1])
            images = _write_images(pool, result, stage.path, dicom_files)
            drawn = pool.submit(pictures.write, stage.path)  # the children's bytes, or drawn on this thread
            with open(stage.path("frames.json"), "w", encoding="utf-8") as f:  # the fields, the femur lines
                f.write(framing.frames_to_json(result.frames, device=result.device, quality=result.verdicts,
                                               femur={s: line.to_dict() for s, line in result.femur.items()}))
            step(steps[2])
            write_volumes_csv(volumes, stage.path("volumes.csv"))
            height = height_cm if height_cm is not None else tio.patient_height_cm(result.ct)
            write_measurements_csv(measurement_rows(result.ct, result.labels, result.frames, height_cm=height,
                                                    lines=result.femur, profiles=profiles, sums=result.sums),
                                   stage.path("measurements.csv"))
            step(steps[3])
            for done in [*images, drawn]:
                done.result()
    except BaseException:
        pictures.cancel()
        raise
    return stage.written


def _write_images(pool, result: Segmentation, path_of, dicom_files: list[str] | None) -> list[Future]:
    """The image files, each in its own task of ``pool`` (ITK and zlib leave Python's lock free).

    ITK's writers get copies made on their threads from views taken here: while ITK holds an
    image, SimpleITK's ``GetArrayViewFromImage`` of it (which the measuring and drawing threads
    call) copies its buffer first, and every view taken before then reads freed memory once the
    writer lets go (seen as label values 21-255 in measurements.csv's composition pass)."""
    from .segnrrd import write_seg_nrrd

    def write_copy(view: np.ndarray, like: sitk.Image, name: str) -> Path:
        image = sitk.GetImageFromArray(view)
        image.CopyInformation(like)
        return tio.write_image(image, path_of(name))

    views = {name: sitk.GetArrayViewFromImage(image)
             for name, image in (("labels.nii.gz", result.labels), ("disagreement.nii.gz", result.disagreement))}
    tasks = [pool.submit(write_copy, views["labels.nii.gz"], result.labels, "labels.nii.gz"),
             pool.submit(write_copy, views["disagreement.nii.gz"], result.disagreement, "disagreement.nii.gz"),
             pool.submit(write_seg_nrrd, result.labels, path_of("segmentation.seg.nrrd"),
                         counts=None if result.sums is None else result.sums.voxels)]
    if dicom_files:
        from .dicomseg import write_dicom_seg

        tasks.append(pool.submit(write_dicom_seg, result.labels, dicom_files, path_of("segmentation.dcm")))
    return tasks


def _pictures_begun(ct: sitk.Image, labels: sitk.Image, disagreement: sitk.Image):
    """``pictures.Pictures`` begun in a forked child where this process allows it, else None
    (then ``write_outputs`` draws them)."""
    from .forked import forking_allowed

    if not forking_allowed():
        return None
    from .pictures import Pictures

    return Pictures(ct, labels, disagreement, _TITLE)


def write_along_femur(ct, labels, lines: dict, path_of, *, title: str = "",
                      notes: list[str] | tuple[str, ...] = (), draw: bool = True, slabs=None) -> tuple:
    """``slabs.csv``, ``profiles.csv`` and (``draw``) ``profiles.png`` of a segmentation (what
    ``thighseg segment`` writes); ``path_of(name)`` gives each file's path; ``slabs``: the
    ``measure.slabs.SlabTable`` along ``lines`` if made already. Here, not in
    ``measure.profiles``, because it draws too (``render_profiles`` reads the profile rows).
    Returns the ``SlabTable`` and the ``ProfileRow`` list."""
    from .measure.profiles import csa_profiles, write_profiles_csv
    from .measure.slabs import slab_table, write_slabs_csv
    slabs = slabs if slabs is not None else slab_table(ct, labels, lines)
    write_slabs_csv(slabs, path_of("slabs.csv"))
    rows = csa_profiles(slabs, lines)
    write_profiles_csv(rows, path_of("profiles.csv"))
    if draw:
        from .render_profiles import write_profiles_png

        write_profiles_png(rows, path_of("profiles.png"), title=title, notes=notes)
    return slabs, rows


def disagreement_share(result: Segmentation) -> float:
    """Share of muscle voxels where at least one view disagreed (for the summary line)."""
    lab = sitk.GetArrayViewFromImage(result.labels) > 0
    dis = sitk.GetArrayViewFromImage(result.disagreement) > 0
    return float((lab & dis).sum() / max(int(lab.sum()), 1))


