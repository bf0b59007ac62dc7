"""A DICOM series (slices in files, or frames of an Enhanced CT) as one CT volume, geometry
from each image's position: missing slices found, unequal spacing and gantry tilt resampled,
compressed pixel data decoded by GDCM (SimpleITK) or, where GDCM cannot, by pydicom with the
pylibjpeg / pyjpegls decoders of the ``dicom`` extra.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .dicom_series import SeriesInfo, Slice
from .errors import InputError
from .limits import Header

DUPLICATE_MM = 0.01  # two images closer than this along the normal are at the same position
GAP_FACTOR = 1.5  # a step this many times the usual spacing is a gap (missing slices)
SPACING_TOLERANCE = 0.02  # steps that differ from the usual one by more than this share are unequal
MAX_TILT_DEG = 30.0  # beyond this it is an oblique series, not an axial CT with gantry tilt


@dataclass
class StackPlan:
    slices: list[Slice]  # sorted along the normal, duplicates dropped
    d: np.ndarray  # each slice's distance from the first along the normal (mm)
    axes: np.ndarray  # (3, 3): columns r (along a row), c (down a column), n (slice normal)
    spacing_xy: tuple[float, float]
    step: float  # slice spacing of the volume made
    shear: np.ndarray  # in-plane shift of the slices per mm along the normal (gantry tilt)
    notes: list[str] = field(default_factory=list)
    resample_z: bool = False

    @property
    def count(self) -> int:
        return int(round(self.d[-1] / self.step)) + 1 if self.resample_z else len(self.slices)

    @property
    def tilted(self) -> bool:
        return bool(np.any(self.shear))

    @property
    def origin(self) -> np.ndarray:
        return np.array(self.slices[0].position, float)


def plan_stack(info: SeriesInfo, allow_gaps: bool = False) -> StackPlan:
    """Order the images and decide how to make a regular volume of them (or refuse, saying why)."""
    name = info.label
    slices = list(info.slices)
    ori = np.array([s.orientation for s in slices], float)
    if np.abs(ori - ori[0]).max() > 1e-3:
        raise InputError(f"{name} mixes images of different orientations (a scout or a second stack in the same "
                         "series?): it is not one volume; give the series of axial slices alone")
    r, c = ori[0, :3], ori[0, 3:]
    if not (abs(np.linalg.norm(r) - 1) < 1e-2 and abs(np.linalg.norm(c) - 1) < 1e-2 and abs(r @ c) < 1e-2):
        raise InputError(f"{name} has a broken ImageOrientationPatient {tuple(ori[0])}: not two unit vectors at "
                         "right angles")
    r, c = r / np.linalg.norm(r), c / np.linalg.norm(c)
    n = np.cross(r, c)
    pos = np.array([s.position for s in slices], float)
    order = np.argsort(pos @ n, kind="stable")
    slices, pos = [slices[i] for i in order], pos[order]
    d = (pos - pos[0]) @ n
    keep, dropped = [0], 0
    for k in range(1, len(slices)):
        if d[k] - d[keep[-1]] < DUPLICATE_MM:
            if slices[k].sop_uid and slices[k].sop_uid == slices[keep[-1]].sop_uid:
                dropped += 1
                continue
            raise InputError(f"{name} holds two different images at the same position ({pos[k] @ n:.1f} mm: "
                             f"{_where(slices[keep[-1]])} and {_where(slices[k])}): two acquisitions in one series? "
                             "give the files of one of them")
        keep.append(k)
    slices, pos, d = [slices[k] for k in keep], pos[keep], d[keep]
    notes = [f"{dropped} duplicate file(s) of the same slice ignored"] if dropped else []
    if len(slices) < 2:
        raise InputError(f"{name} holds one slice position only: not a volume")
    steps = np.diff(d)
    usual = float(np.median(steps))
    if usual <= 0 or not math.isfinite(usual):
        raise InputError(f"{name}: its slice positions do not advance (broken ImagePositionPatient)")
    gaps = np.flatnonzero(steps > GAP_FACTOR * usual)
    plan = StackPlan(slices, d, np.column_stack([r, c, n]), (info.pixel_spacing[1], info.pixel_spacing[0]),
                     float(d[-1] / (len(d) - 1)), np.zeros(3), notes)
    if len(gaps):
        missing = int(sum(round(steps[g] / usual) - 1 for g in gaps))
        g = int(gaps[np.argmax(steps[gaps])])
        where = (f"between {_z(pos[g], pos[g + 1], n)} ({_where(slices[g])} and {_where(slices[g + 1])}: a "
                 f"{steps[g]:.1f} mm step where the slices are {usual:.2f} mm apart)")
        told = (f"{len(gaps)} gaps in its slices ({missing} slices missing), the largest " if len(gaps) > 1
                else f"a gap in its slices: {_count(missing, 'slice')} missing ")
        if not allow_gaps:
            raise InputError(f"{name} has {told}{where}; volumes across the gap would be wrong: get the complete "
                             "series, or pass --allow-gaps to interpolate across it")
        notes.append(f"{told}{where}: interpolated across (--allow-gaps)")
        plan.resample_z, plan.step = True, usual
    elif np.abs(steps - usual).max() > max(SPACING_TOLERANCE * usual, DUPLICATE_MM):
        plan.resample_z, plan.step = True, float(steps.min())
        notes.append(f"its slices are unequally spaced ({steps.min():.2f} to {steps.max():.2f} mm apart): "
                     f"resampled to {plan.step:.2f} mm")
    shift = (pos - pos[0]) - np.outer(d, n)  # in-plane drift of each slice
    a = (shift.T @ d) / float(d @ d)
    off_line = float(np.abs(shift - np.outer(d, a)).max())
    pixel = min(plan.spacing_xy) if min(plan.spacing_xy) > 0 else 1.0
    if off_line > 0.5 * pixel + 0.1:
        raise InputError(f"{name}: its slices do not lie along a straight line (positions wander by up to "
                         f"{off_line:.1f} mm): not one volume")
    if np.linalg.norm(a) * d[-1] > 0.5 * pixel:
        tilt = math.degrees(math.atan(float(np.linalg.norm(a))))
        if tilt > MAX_TILT_DEG:
            raise InputError(f"{name} is stacked {tilt:.0f}° off its slices' normal: an oblique reconstruction, not "
                             "an axial CT; give the axial series")
        plan.shear = a
        notes.append(f"gantry tilt of {tilt:.1f}° corrected (resampled onto an upright grid)")
    return plan


def _z(p, q, n) -> str:
    """Where two slices are, in words: z when the slices are axial."""
    a, b = (float(np.dot(v, n)) for v in (p, q))
    axial = abs(abs(n[2]) - 1) < 1e-3
    return f"z = {p[2]:.1f} and {q[2]:.1f} mm" if axial else f"{a:.1f} and {b:.1f} mm along the slice normal"


def _count(k: int, what: str) -> str:
    return f"{k} {what}" + ("" if k == 1 else "s")


def _where(s: Slice) -> str:
    return Path(s.file).name + (f" frame {s.frame + 1}" if s.frame is not None else "")


def header_of(info: SeriesInfo, plan: StackPlan, bits: int = 16) -> Header:
    """What the volume will be, for the sanity limits, before any pixel is read."""
    return Header(info.label, (info.columns, info.rows, plan.count), (*plan.spacing_xy, plan.step),
                  tuple(plan.origin), tuple(plan.axes.ravel()), 1, max(bits // 8, 1), f"{bits}-bit")


def read_series(info: SeriesInfo, plan: StackPlan) -> sitk.Image:
    """The CT in HU on a regular grid (resampled where the plan says so)."""
    if info.multiframe:
        image = _from_array(_pydicom_frames(info, plan.slices))
    else:
        image = _gdcm_stack(info, plan.slices)
    image.SetOrigin(tuple(plan.origin))
    image.SetSpacing((*plan.spacing_xy, plan.step if not plan.resample_z else 1.0))
    image.SetDirection(tuple(plan.axes.ravel()))
    if plan.resample_z:
        image = _regular_in_z(image, plan)
    if plan.tilted:
        image = _untilt(image, plan)
    return image


JPEG_2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
             "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")


def _pydicom_decodes(syntax: str) -> bool:
    try:
        from pydicom.pixels import get_decoder

        return bool(get_decoder(syntax).is_available)
    except Exception:  # noqa: BLE001 - an older pydicom, an unknown syntax: GDCM reads it
        return False


def _gdcm_stack(info: SeriesInfo, slices: list[Slice]) -> sitk.Image:
    if info.transfer_syntax in JPEG_2000 and _pydicom_decodes(info.transfer_syntax):
        return _from_array(_pydicom_frames(info, slices))  # OpenJPEG via pylibjpeg: faster than GDCM's
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([s.file for s in slices])
    try:
        return reader.Execute()
    except RuntimeError as gdcm_error:
        try:  # a transfer syntax GDCM lacks: pydicom with the decoders of the dicom extra
            return _from_array(_pydicom_frames(info, slices))
        except InputError as e:
            raise InputError(f"{e} (GDCM: {_last_line(gdcm_error)})") from None


def _pydicom_frames(info: SeriesInfo, slices: list[Slice]) -> np.ndarray:
    """(z, y, x) HU from pydicom, each frame rescaled with its own slope and intercept."""
    import pydicom

    out, cache = None, {}
    for k, s in enumerate(slices):
        if s.file not in cache:
            cache.clear()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(s.file)
                    pixels = ds.pixel_array
            except Exception as e:  # noqa: BLE001 - a decoder's own words say what it lacks
                raise InputError(_decode_problem(info, s.file, e)) from None
            cache[s.file] = (ds, pixels if pixels.ndim == 3 and s.frame is not None else pixels[None])
        ds, pixels = cache[s.file]
        slope, intercept = _rescale(ds, s.frame)
        frame = pixels[s.frame or 0].astype(np.float32) * slope + intercept
        if out is None:
            whole = float(slope).is_integer() and float(intercept).is_integer()
            out = np.empty((len(slices), *frame.shape), np.int16 if whole else np.float32)
        out[k] = np.clip(frame, -32768, 32767) if out.dtype == np.int16 else frame
    return out


def _rescale(ds, frame: int | None) -> tuple[float, float]:
    groups = []
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds:
        groups.append(ds.PerFrameFunctionalGroupsSequence[frame])
    if "SharedFunctionalGroupsSequence" in ds:
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    for g in groups:
        if "PixelValueTransformationSequence" in g:
            t = g.PixelValueTransformationSequence[0]
            return float(t.get("RescaleSlope", 1) or 1), float(t.get("RescaleIntercept", 0) or 0)
    return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)


def _decode_problem(info: SeriesInfo, path: str, e: Exception) -> str:
    syntax = info.transfer_syntax
    try:
        from pydicom.uid import UID

        syntax = f"{UID(syntax).name} ({syntax})" if syntax else "unknown"
    except Exception:  # noqa: BLE001
        pass
    text = _last_line(e)
    if "plugin" in text.lower() or "missing" in text.lower() or "decod" in text.lower() or "not supported" in text:
        return (f"cannot decode {Path(path).name} of {info.label}: its transfer syntax {syntax} needs a decoder that "
                f"is not installed: pip install 'ThighMuscleSeg[dicom]' (pylibjpeg, pylibjpeg-openjpeg, "
                f"pylibjpeg-libjpeg, pyjpegls) [{text}]")
    return f"cannot read the pixels of {Path(path).name} of {info.label} (damaged?): {text}"


def _last_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _from_array(arr: np.ndarray) -> sitk.Image:
    return sitk.GetImageFromArray(arr)


def _regular_in_z(image: sitk.Image, plan: StackPlan) -> sitk.Image:
    """Slices at every ``plan.step`` mm, linearly interpolated between the two nearest images."""
    src = sitk.GetArrayViewFromImage(image)
    targets = np.arange(plan.count) * plan.step
    out = np.empty((plan.count, *src.shape[1:]), src.dtype)
    hi = np.clip(np.searchsorted(plan.d, targets, side="left"), 1, len(plan.d) - 1)
    for j, (t, k) in enumerate(zip(targets, hi)):
        d0, d1 = plan.d[k - 1], plan.d[k]
        w = float(np.clip((t - d0) / (d1 - d0), 0.0, 1.0))
        if w < 1e-6 or w > 1 - 1e-6:
            out[j] = src[k - 1] if w < 0.5 else src[k]
        else:
            mixed = (1 - w) * src[k - 1].astype(np.float32) + w * src[k].astype(np.float32)
            out[j] = np.rint(mixed) if out.dtype.kind in "iu" else mixed
    result = sitk.GetImageFromArray(out)
    result.SetOrigin(image.GetOrigin())
    result.SetSpacing((*plan.spacing_xy, plan.step))
    result.SetDirection(image.GetDirection())
    return result


def _untilt(image: sitk.Image, plan: StackPlan) -> sitk.Image:
    """The sheared stack of a tilted gantry resampled onto an orthogonal grid whose third axis
    runs along the table (the slices' line), so that anatomy is upright again."""
    r, c, n = plan.axes.T
    p0, a = plan.origin, plan.shear
    table = (n + a) / np.linalg.norm(n + a)
    e3 = table - (table @ r) * r
    e3 /= np.linalg.norm(e3)
    e2 = np.cross(e3, r)
    frame = np.column_stack([r, e2, e3])
    size = np.array(image.GetSize())
    sx, sy, sz = image.GetSpacing()
    corners = []
    for i in (0, size[0] - 1):
        for j in (0, size[1] - 1):
            for k in (0, size[2] - 1):
                corners.append(i * sx * r + j * sy * c + k * sz * (n + a))
    coords = np.array(corners) @ frame  # in the upright frame, relative to p0
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    spacing = np.array([sx, sy, sz * float(np.linalg.norm(n + a))])
    out_size = [int(v) for v in np.floor((hi - lo) / spacing + 1e-6) + 1]
    ref = sitk.Image(out_size, image.GetPixelID())
    ref.SetSpacing(tuple(float(v) for v in spacing))
    ref.SetOrigin(tuple(float(v) for v in p0 + frame @ lo))
    ref.SetDirection(tuple(frame.ravel()))
    shear = sitk.AffineTransform(3)
    shear.SetMatrix(tuple((np.eye(3) - np.outer(a, n)).ravel()))
    shear.SetCenter(tuple(float(v) for v in p0))
    outside = min(float(sitk.GetArrayViewFromImage(image)[::8, ::8, ::8].min()), -1024.0)
    return sitk.Resample(image, ref, shear, sitk.sitkLinear, outside, image.GetPixelID())
