"""Damaged, odd or hostile inputs, each a case of its own: ``thighseg segment`` refuses each
with exit code 2 and one line that says what is wrong and what to do (no traceback), leaves
no output folder behind and does not touch the input; what can be read safely (a DICOM folder
with other objects beside the CT, a compressed series, a tilted gantry, an Enhanced CT) is
read, and says what it chose or changed.

Real files throughout, written by SimpleITK, pydicom and highdicom; the command runs in this
process (``main([...])``, the console script's own function) where nothing else is needed, and
in a subprocess where the operating system must fail it: a full disk (a 256 KB tmpfs, or where
mounting is not permitted, a file size limit), write permission lost mid-run (the run's user
cannot write once the folder is made read-only; as root the run drops to an unprivileged user,
since root writes anyway) and the output folder deleted mid-run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from synthetic_dicom import (write_ct_series, write_dose_report, write_enhanced_ct, write_scout,
                             write_secondary_capture)
from synthetic_thighs import synthetic_thighs
from ThighMuscleSegLib import io as tio
from ThighMuscleSegLib.cli.main import main

REPO = Path(__file__).resolve().parent.parent


# --- helpers ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def thighs_ct() -> sitk.Image:
    """A small CT of two thighs (air, fat, muscle, bone; 384 x 320 x 360 mm) that framing finds."""
    return synthetic_thighs()[0]


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():  # segment sets its cancel handlers in this process
        signal.signal(s, handler)


@pytest.fixture
def segment(random_model_file, capsys):
    """``thighseg segment ARGS`` in this process: (exit code, stdout, stderr)."""

    def run(*args):
        code = main(["segment", *map(str, args), "--model", str(random_model_file), "--device", "cpu"])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def fingerprint(path: Path) -> dict:
    """Every file under ``path``: size, modification time and content hash (to show it untouched)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
            for f in files}


def refused(segment, tmp_path, source, *words, extra=()):
    """Run segment on ``source``; assert exit 2, one error line holding ``words``, no output
    folder, the input untouched. Returns the error line."""
    before = fingerprint(Path(source))
    out = tmp_path / "results"
    code, _, err = segment(source, "--out", out, *extra)
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("thighseg segment:")]
    assert len(lines) == 1 and lines[0].startswith("thighseg segment: error: "), err
    for w in words:
        assert re.search(w, lines[0]), (w, lines[0])
    assert not out.exists()
    assert fingerprint(Path(source)) == before
    return lines[0]


def cut(path: Path, share: float, dest: Path) -> Path:
    data = path.read_bytes()
    dest.write_bytes(data[: int(len(data) * share)])
    return dest


# --- files that are damaged -------------------------------------------------------------------------

def test_a_nii_gz_cut_to_a_third_is_truncated_not_segmented(segment, tmp_path, thighs_ct):
    whole = tmp_path / "whole.nii.gz"
    sitk.WriteImage(thighs_ct, str(whole))
    line = refused(segment, tmp_path, cut(whole, 1 / 3, tmp_path / "ct.nii.gz"), "ct.nii.gz is truncated",
                   r"\d+ % of the expected data", "copy it again")
    share = int(re.search(r"(\d+) % of the expected", line).group(1))
    assert 5 <= share <= 60  # a third of the compressed bytes holds some share of the voxels, never all


@pytest.mark.parametrize("suffix", [".nii", ".nrrd", ".mha"])
def test_an_uncompressed_or_compressed_file_cut_short_is_truncated(segment, tmp_path, thighs_ct, suffix):
    whole = tmp_path / f"whole{suffix}"
    sitk.WriteImage(thighs_ct, str(whole), suffix != ".nii")
    refused(segment, tmp_path, cut(whole, 0.31, tmp_path / f"ct{suffix}"), "is truncated", r"\d+ % of the expected")


def test_a_changed_byte_fails_the_gzip_checksum(segment, tmp_path, thighs_ct):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(thighs_ct, str(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A  # one byte changed in the middle of the compressed stream
    path.write_bytes(bytes(data))
    refused(segment, tmp_path, path, "ct.nii.gz is damaged", "checksum|cannot be decompressed")


def test_a_wrong_length_in_the_gzip_trailer_is_damage(segment, tmp_path, thighs_ct):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(thighs_ct, str(path))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # ISIZE, the uncompressed length
    path.write_bytes(bytes(data))
    refused(segment, tmp_path, path, "ct.nii.gz is damaged", "checksum")


def test_a_header_promising_more_voxels_than_the_file_holds(segment, tmp_path, thighs_ct):
    path = tmp_path / "ct.nii"
    sitk.WriteImage(thighs_ct, str(path), False)
    data = bytearray(path.read_bytes())
    struct.pack_into("<h", data, 46, thighs_ct.GetSize()[2] * 2)  # dim[3]: twice the slices
    path.write_bytes(bytes(data))
    refused(segment, tmp_path, path, "is truncated: 50 % of the expected data")


def test_a_file_holding_more_voxels_than_its_header_says(segment, tmp_path, thighs_ct):
    path = tmp_path / "ct.nii.gz"
    raw = tmp_path / "ct.nii"
    sitk.WriteImage(thighs_ct, str(raw), False)
    data = bytearray(raw.read_bytes())
    struct.pack_into("<h", data, 46, thighs_ct.GetSize()[2] - 10)  # dim[3]: ten slices fewer
    path.write_bytes(gzip.compress(bytes(data)))
    refused(segment, tmp_path, path, "holds more data than its header describes")


def test_a_header_whose_detached_data_file_is_missing(segment, tmp_path, thighs_ct):
    sitk.WriteImage(thighs_ct, str(tmp_path / "ct.mhd"))
    (tmp_path / "ct.raw").unlink()
    refused(segment, tmp_path, tmp_path / "ct.mhd", "data file ct.raw is missing", "copy ct.raw next to it")


def test_a_detached_data_file_cut_short(segment, tmp_path, thighs_ct):
    sitk.WriteImage(thighs_ct, str(tmp_path / "ct.nhdr"), False)
    data_file = next(p for p in tmp_path.iterdir() if p.suffix != ".nhdr")
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    refused(segment, tmp_path, tmp_path / "ct.nhdr", f"data file {data_file.name} is truncated: 50 %")


def test_an_empty_file(segment, tmp_path):
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    refused(segment, tmp_path, tmp_path / "ct.nii.gz", r"is empty \(0 bytes\)")


def test_a_text_file_named_like_a_ct(segment, tmp_path):
    (tmp_path / "ct.nii.gz").write_text("patient list\n1;2;3\n")
    refused(segment, tmp_path, tmp_path / "ct.nii.gz", "corrupt or not a CT")


def test_a_photo(segment, tmp_path):
    photo = tmp_path / "knee.png"
    sitk.WriteImage(sitk.Image(64, 48, sitk.sitkVectorUInt8, 3), str(photo))
    refused(segment, tmp_path, photo, "is not a CT file")


def test_a_missing_file(segment, tmp_path):
    code, _, err = segment(tmp_path / "nope.nii.gz", "--out", tmp_path / "results")
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


# --- images that are no CT of a thigh ---------------------------------------------------------------

def _write(tmp_path, image, name="ct.nrrd") -> Path:
    path = tmp_path / name
    sitk.WriteImage(image, str(path), True)
    return path


def test_one_slice(segment, tmp_path, thighs_ct):
    refused(segment, tmp_path, _write(tmp_path, thighs_ct[:, :, 30]), "is a 2-D image", "give the whole CT")


def test_a_4d_image(segment, tmp_path, thighs_ct):
    refused(segment, tmp_path, _write(tmp_path, sitk.JoinSeries([thighs_ct, thighs_ct]), "ct.nii.gz"),
            "is 4-D", "2 volumes in one file")


def test_a_4_by_4_by_4_image_is_too_small_in_mm(segment, tmp_path):
    tiny = sitk.GetImageFromArray(np.full((4, 4, 4), -1000, np.int16))
    refused(segment, tmp_path, _write(tmp_path, tiny), r"covers only 4 × 4 × 4 mm", "too small to hold a thigh")


def test_frame_applies_the_same_limits_as_segment(tmp_path, capsys):
    tiny = _write(tmp_path, sitk.GetImageFromArray(np.full((4, 4, 4), -1000, np.int16)))
    code = main(["frame", str(tiny), "--out", str(tmp_path / "frames")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(r"thighseg frame: error: .*covers only 4 × 4 × 4 mm.*too small to hold a thigh", err), err
    assert not (tmp_path / "frames").exists()


def test_a_scan_too_short_to_hold_a_femur(segment, tmp_path, thighs_ct):
    refused(segment, tmp_path, _write(tmp_path, thighs_ct[:, :, :10]), "too small to hold a thigh", "head-foot")


@pytest.mark.parametrize("spacing, words", [(0.0, "voxel size of 0 mm along z"), (-2.0, "voxel size of -2 mm"),
                                            (25.0, "voxel size of 25 mm along z: more than 20 mm")],
                         ids=["zero", "negative", "over-20-mm"])
def test_absurd_voxel_sizes(segment, tmp_path, thighs_ct, spacing, words):
    path = _write(tmp_path, thighs_ct, "ct.mha")
    header = re.sub(rb"ElementSpacing = [^\n]*\n", f"ElementSpacing = 4 4 {spacing:g}\n".encode(), path.read_bytes())
    path.write_bytes(header)
    refused(segment, tmp_path, path, words)


def test_a_zero_voxel_size_in_a_nifti_header(segment, tmp_path, thighs_ct):
    path = tmp_path / "ct.nii"
    sitk.WriteImage(thighs_ct, str(path), False)
    data = bytearray(path.read_bytes())
    struct.pack_into("<f", data, 76 + 4 * 3, 0.0)  # pixdim[3] (ITK would silently read 1 mm)
    path.write_bytes(bytes(data))
    refused(segment, tmp_path, path, r"voxel size of 0 mm along z in its NIfTI header")


def _huge_header(tmp_path) -> Path:
    (tmp_path / "huge.raw").write_bytes(b"\0" * 4096)
    header = tmp_path / "huge.nhdr"
    header.write_text("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 512 512 9000\n"
                      "space directions: (0.8,0,0) (0,0.8,0) (0,0,1)\nendian: little\nencoding: raw\n"
                      "space origin: (0,0,0)\ndata file: huge.raw\n")
    return header


def test_more_than_4_gb_of_voxels_needs_allow_huge(segment, tmp_path):
    refused(segment, tmp_path, _huge_header(tmp_path), r"holds 4\.4 GB of voxels", "pass --allow-huge")


def test_allow_huge_lets_a_huge_header_through_to_the_next_check(segment, tmp_path):
    # the header passes the size limit; the 4 KB data file then fails the integrity check
    refused(segment, tmp_path, _huge_header(tmp_path), "huge.raw is truncated: 0 %", extra=("--allow-huge",))


def test_a_colour_image(segment, tmp_path, thighs_ct):
    refused(segment, tmp_path, _write(tmp_path, sitk.Compose([thighs_ct] * 3)), "3 components per voxel")


def test_nan_voxels(segment, tmp_path, thighs_ct):
    arr = sitk.GetArrayFromImage(thighs_ct).astype(np.float32)
    arr[20:25] = np.nan
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(thighs_ct)
    refused(segment, tmp_path, _write(tmp_path, image), "NaN or infinite")


def test_nan_voxels_in_a_nifti_that_itk_would_read_as_zero(segment, tmp_path, thighs_ct):
    arr = sitk.GetArrayFromImage(thighs_ct).astype(np.float32)
    arr[20:25] = np.nan
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(thighs_ct)
    refused(segment, tmp_path, _write(tmp_path, image, "ct.nii.gz"), "NaN or infinite")


def _like(thighs_ct, arr):
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(thighs_ct)
    return image


def test_an_mr_like_image(segment, tmp_path, thighs_ct):
    arr = sitk.GetArrayFromImage(thighs_ct).astype(np.float32)
    mr = np.clip((arr + 1000) * 0.4, 0, None).astype(np.int16)  # no negative values, no air at -1000
    refused(segment, tmp_path, _write(tmp_path, _like(thighs_ct, mr)), "shows no air", "MR")


def test_ct_values_stored_without_their_rescale(segment, tmp_path, thighs_ct):
    raw = (sitk.GetArrayFromImage(thighs_ct).astype(np.int32) + 1024).astype(np.uint16)
    refused(segment, tmp_path, _write(tmp_path, _like(thighs_ct, raw)), "shows no air",
            "without their rescale intercept")


def test_a_label_map_given_as_the_ct(segment, tmp_path):
    labels = synthetic_thighs()[1]
    refused(segment, tmp_path, _write(tmp_path, labels), "distinct values", "label map")


def test_normalised_floats(segment, tmp_path, thighs_ct):
    arr = (sitk.GetArrayFromImage(thighs_ct).astype(np.float32) + 1000) / 1700
    refused(segment, tmp_path, _write(tmp_path, _like(thighs_ct, arr)), "non-integer values from 0 to 1",
            "not a CT in Hounsfield units")


def test_a_ct_without_thighs_says_so(segment, tmp_path):
    z, y, x = np.mgrid[0:60, 0:80, 0:96]
    arr = np.where((x - 48) ** 2 + (y - 40) ** 2 < 30 ** 2, 20, -1000).astype(np.int16)  # a water cylinder
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((4.0, 4.0, 6.0))
    refused(segment, tmp_path, _write(tmp_path, image), "no thigh")


# --- the model and the output folder ------------------------------------------------------------------

def test_a_corrupt_model_file(tmp_path, thighs_ct, capsys):
    bad = tmp_path / "broken.tmsmodel"
    bad.write_bytes(b"PK\x03\x04 not really a model")
    code = main(["segment", str(_write(tmp_path, thighs_ct)), "--out", str(tmp_path / "results"), "--model", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "model" in err.lower() and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_existing_results_are_kept_and_refused_before_the_run(segment, tmp_path, thighs_ct):
    out = tmp_path / "results"
    out.mkdir()
    (out / "volumes.csv").write_text("earlier")
    code, _, err = segment(_write(tmp_path, thighs_ct), "--out", out)
    assert code == 2 and "already holds results" in err and "reading" not in err  # refused before reading
    assert (out / "volumes.csv").read_text(encoding="utf-8") == "earlier"


def test_an_output_path_that_is_a_file(segment, tmp_path, thighs_ct):
    (tmp_path / "results").write_text("not a folder")
    code, _, err = segment(_write(tmp_path, thighs_ct), "--out", tmp_path / "results")
    assert code == 2 and "is a file, not a folder" in err
    assert (tmp_path / "results").read_text(encoding="utf-8") == "not a folder"


# --- DICOM, the way archives hold it ------------------------------------------------------------------

@pytest.fixture(scope="module")
def archive_folder(thighs_ct, tmp_path_factory):
    """A study folder: the CT series, a scout, a dose report, a DICOM SEG and a screenshot."""
    from pydicom.uid import generate_uid

    from ThighMuscleSegLib.dicomseg import write_dicom_seg

    root = tmp_path_factory.mktemp("archive") / "study"
    study = generate_uid()
    files = write_ct_series(thighs_ct, root / "2_thighs", study=study, description="Thighs 4.0 Br40")
    write_scout(thighs_ct, root / "1_scout", study)
    write_dose_report(root / "9_dose", study)
    write_secondary_capture(root / "8_screen", study)
    labels = synthetic_thighs()[1]
    write_dicom_seg(labels, files, root / "3_seg" / "seg.dcm")
    return root


def test_a_folder_with_a_scout_a_dose_report_a_seg_and_a_screenshot_reads_the_ct(archive_folder, thighs_ct):
    before = fingerprint(archive_folder)
    ct = tio.read_ct(archive_folder, thighs=True)
    assert "Thighs 4.0 Br40" in ct.GetMetaData("series")
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(thighs_ct))
    assert tio.same_geometry(ct, thighs_ct, 1e-3)
    note = " ".join(tio.input_notes(ct))
    for what in ("'Topogram 0.6 T20f' (1 image): a localizer", "'Dose Report' (1 image): a structured report",
                 "a segmentation (SEG)", "'Screen Save' (1 image): a secondary capture"):
        assert what in note, note
    assert tio.dicom_seg_sources(archive_folder, ct)[0] is not None  # the CT's own slices
    assert fingerprint(archive_folder) == before


def test_a_folder_with_no_ct_series_lists_what_it_holds(segment, tmp_path, thighs_ct):
    from pydicom.uid import generate_uid

    study = generate_uid()
    write_scout(thighs_ct, tmp_path / "dicom", study)
    write_dose_report(tmp_path / "dicom", study)
    write_secondary_capture(tmp_path / "dicom", study)
    refused(segment, tmp_path, tmp_path / "dicom", "no CT series that can hold a thigh", "localizer",
            "structured report", "secondary capture")


def test_a_missing_slice_is_refused_and_named(segment, tmp_path, thighs_ct):
    write_ct_series(thighs_ct, tmp_path / "dicom", drop=(30,))
    refused(segment, tmp_path, tmp_path / "dicom", "a gap in its slices: 1 slice missing",
            r"between z = 674\.0 and 686\.0 mm", "ct_0029.dcm and ct_0031.dcm", "--allow-gaps")


def test_allow_gaps_interpolates_across_the_missing_slice(tmp_path, thighs_ct):
    write_ct_series(thighs_ct, tmp_path / "dicom", drop=(30,))
    ct = tio.read_ct(tmp_path / "dicom", allow_gaps=True, thighs=True)
    assert tio.same_geometry(ct, thighs_ct, 1e-3)  # the full grid again, the gap filled
    got, want = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(thighs_ct)
    assert np.array_equal(np.delete(got, 30, axis=0), np.delete(want, 30, axis=0))
    between = np.rint((want[29].astype(float) + want[31]) / 2)
    assert np.array_equal(got[30], between)
    assert any("interpolated across (--allow-gaps)" in n for n in tio.input_notes(ct))
    files, why = tio.dicom_seg_sources(tmp_path / "dicom", ct)
    assert files is None and "no segmentation.dcm" in why


def test_unequal_slice_spacing_is_resampled_to_a_regular_grid(tmp_path, thighs_ct):
    z0 = thighs_ct.GetOrigin()[2]
    zs = [z0 + 5.0 * k for k in range(24)] + [z0 + 115.0 + 7.0 * k for k in range(1, 30)]
    write_ct_series(thighs_ct, tmp_path / "dicom", positions_mm=zs)
    ct = tio.read_ct(tmp_path / "dicom", thighs=True)
    assert ct.GetSpacing()[2] == pytest.approx(5.0, abs=1e-3)
    assert ct.GetOrigin()[2] == pytest.approx(z0, abs=1e-3)
    assert (ct.GetSize()[2] - 1) * 5.0 == pytest.approx(zs[-1] - z0, abs=5.0)
    assert any("unequally spaced (5.00 to 7.00 mm apart): resampled to 5.00 mm" in n for n in tio.input_notes(ct))
    import pydicom

    acquired = pydicom.dcmread(tmp_path / "dicom" / "ct_0028.dcm")  # z0 + 150 mm, where the grid meets it
    assert float(acquired.ImagePositionPatient[2]) == pytest.approx(z0 + 150.0, abs=1e-3)
    assert np.array_equal(sitk.GetArrayViewFromImage(ct)[30], acquired.pixel_array)


def test_gantry_tilt_is_corrected(tmp_path, thighs_ct):
    write_ct_series(thighs_ct, tmp_path / "dicom", tilt_deg=12.0)
    ct = tio.read_ct(tmp_path / "dicom", thighs=True)
    assert any("gantry tilt of 12.0° corrected" in n for n in tio.input_notes(ct))
    d = np.array(ct.GetDirection()).reshape(3, 3)
    assert np.allclose(d, np.eye(3), atol=1e-6)  # upright again
    # the anatomy is where it was: the corrected CT on the original grid matches it inside
    back = sitk.Resample(ct, thighs_ct, sitk.Transform(), sitk.sitkLinear, -1024)
    got, want = sitk.GetArrayViewFromImage(back).astype(float), sitk.GetArrayViewFromImage(thighs_ct).astype(float)
    inner = (slice(12, -12), slice(10, -10), slice(10, -10))
    err = np.abs(got[inner] - want[inner]).mean()
    uncorrected = np.abs(_stacked(tmp_path / "dicom")[inner] - want[inner]).mean()  # the slices taken as upright
    assert err < 0.5 * uncorrected, (err, uncorrected)


def _stacked(folder: Path) -> np.ndarray:
    import pydicom

    slices = sorted((pydicom.dcmread(f) for f in folder.iterdir()), key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array for ds in slices]).astype(float)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"],
                         ids=["RLE", "JPEG-LS", "JPEG-2000"])
def test_compressed_transfer_syntaxes_read_the_same_voxels(tmp_path, thighs_ct, syntax):
    pytest.importorskip({"1.2.840.10008.1.2.4.80": "jpeg_ls", "1.2.840.10008.1.2.4.90": "openjpeg"}.get(syntax, "numpy"))
    slab = thighs_ct[:, :, 10:30]
    write_ct_series(slab, tmp_path / "dicom", syntax=syntax)
    import pydicom

    assert str(pydicom.dcmread(tmp_path / "dicom" / "ct_0000.dcm").file_meta.TransferSyntaxUID) == syntax
    ct = tio.read_ct(tmp_path / "dicom")
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(slab))
    assert tio.same_geometry(ct, slab, 1e-3)


def test_an_enhanced_multiframe_ct_is_read(tmp_path, thighs_ct):
    files = write_ct_series(thighs_ct, tmp_path / "classic")
    enhanced = write_enhanced_ct(files, tmp_path / "enhanced" / "ct.dcm")
    for source in (enhanced.parent, enhanced):  # its folder, or the file itself
        ct = tio.read_ct(source, thighs=True)
        assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(thighs_ct))
        assert tio.same_geometry(ct, thighs_ct, 1e-3)
        assert "frames in 1 file" in ct.GetMetaData("series")
        files, why = tio.dicom_seg_sources(source, ct)
        assert files is None and "Enhanced multi-frame" in why


def test_a_damaged_slice_file_is_named(segment, tmp_path, thighs_ct):
    files = write_ct_series(thighs_ct, tmp_path / "dicom")
    cut(Path(files[17]), 0.6, Path(files[17]))
    refused(segment, tmp_path, tmp_path / "dicom", r"ct_0017\.dcm is truncated: \d+ % of its pixel data",
            "copy the series again")


def test_two_images_at_one_position_are_refused(segment, tmp_path, thighs_ct):
    files = write_ct_series(thighs_ct, tmp_path / "dicom")
    import pydicom

    ds = pydicom.dcmread(files[5])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "dicom" / "ct_0005_repeat.dcm")
    refused(segment, tmp_path, tmp_path / "dicom", "two different images at the same position")


def test_a_file_copied_twice_is_read_once(tmp_path, thighs_ct):
    files = write_ct_series(thighs_ct, tmp_path / "dicom")
    shutil.copy(files[5], tmp_path / "dicom" / "ct_0005 (copy).dcm")
    ct = tio.read_ct(tmp_path / "dicom")
    assert ct.GetSize() == thighs_ct.GetSize()
    assert any("1 duplicate file(s)" in n for n in tio.input_notes(ct))


def test_one_dicom_file_of_a_series(segment, tmp_path, thighs_ct):
    files = write_ct_series(thighs_ct, tmp_path / "dicom")
    refused(segment, tmp_path, files[3], "is one DICOM image", "give the folder")


# --- writing: the disk, the permission, the folder itself fail mid-run --------------------------------

def _cli(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ThighMuscleSegLib.cli.main", "segment", *map(str, args),
                             "--device", "cpu", "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, **kw)


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("thighseg segment:")]
    assert len(lines) == 1 and lines[0].startswith("thighseg segment: error: cannot write the results"), err
    return lines[0]


@pytest.fixture
def shared_dir():
    """A folder every user can enter (an unprivileged run must reach its input and model)."""
    folder = Path(tempfile.mkdtemp(prefix="thighseg-bad-inputs-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, thighs_ct, random_model_file):
    """A real full disk: a 256 KB tmpfs as the output disk (root only: the mount must be permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("mounting a small tmpfs is not permitted here; see the file size limit test")
    try:
        source = _write(tmp_path, thighs_ct)
        before = fingerprint(source)
        proc = _cli(source, "--out", disk / "results", "--model", random_model_file)
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 2
        assert "the disk is full" in _one_error_line(err)
        assert os.listdir(disk) == []  # no results folder, no staging folder, no temporary
        assert fingerprint(source) == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def _limit_file_size():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_file_size_limit_is_a_clear_error_and_leaves_nothing(tmp_path, thighs_ct, random_model_file):
    """Where no small disk can be mounted: the kernel refuses writes past RLIMIT_FSIZE (EFBIG),
    which the writers meet exactly as they meet a full disk."""
    source = _write(tmp_path, thighs_ct)
    before = fingerprint(source)
    proc = _cli(source, "--out", tmp_path / "results", "--model", random_model_file, preexec_fn=_limit_file_size)
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 2
    assert "file size limit" in _one_error_line(err)
    assert not (tmp_path / "results").exists()
    assert fingerprint(source) == before


def _as_unprivileged():
    """Root writes through any permission: the run gives up the capabilities that let it
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH; Linux), so that the permission bits hold for it;
    where that is not possible it runs as the user nobody."""
    if os.geteuid() != 0:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # dropped from the bounding set: the exec'd Python never has them
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    except (OSError, AttributeError):
        os.setgid(65534)
        os.setuid(65534)


def _unprivileged_python_runs() -> bool:
    """Whether the unprivileged user can start this venv's Python (a checkout below a folder
    only root may enter cannot be run by nobody: then the permission test cannot be made)."""
    try:
        return subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_as_unprivileged,
                              capture_output=True, timeout=120).returncode == 0
    except (PermissionError, OSError, subprocess.SubprocessError):
        return False


def _wait_for(proc, text: str) -> None:
    for line in proc.stdout:
        if text in json.loads(line).get("message", ""):
            return
    raise AssertionError(f"the run ended before '{text}': {proc.stderr.read()}")


@pytest.mark.slow
def test_write_permission_lost_mid_run(shared_dir, thighs_ct, random_model_file):
    if os.geteuid() == 0 and not _unprivileged_python_runs():
        pytest.skip(f"an unprivileged user cannot run {sys.executable} here (folder permissions)")
    source = _write(shared_dir, thighs_ct)
    model = shared_dir / "model.tmsmodel"
    shutil.copy(random_model_file, model)
    for p in (source, model):
        p.chmod(0o644)
    out = shared_dir / "results"
    out.mkdir()
    out.chmod(0o777)  # writable by the run, whichever way it is unprivileged
    shared_dir.chmod(0o777)  # HOME of a run as nobody (matplotlib's cache)
    before = fingerprint(source)
    env = {**os.environ, "HOME": str(shared_dir), "MPLCONFIGDIR": str(shared_dir)}
    proc = _cli(source, "--out", out, "--model", model, preexec_fn=_as_unprivileged, env=env)
    _wait_for(proc, "writing labels.nii.gz")  # the staging folder is made, the writing begins
    out.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        proc.stdout.read()
        err = proc.stderr.read()
        proc.wait(timeout=1800)
        assert proc.returncode == 2
        line = _one_error_line(err)
        assert "permission was denied" in line and "nothing was written" in line
        leftovers = [p for p in out.rglob("*") if p.is_file()]
        assert leftovers == []  # no result and no staged file; an empty staging folder that can no
        staging = [p for p in out.iterdir()]  # longer be removed is named in the message
        assert all(p.name.startswith(".thighseg-staging-") and str(p) in line for p in staging)
        assert fingerprint(source) == before
    finally:
        out.chmod(0o755)


@pytest.mark.slow
def test_the_output_folder_deleted_mid_run(tmp_path, thighs_ct, random_model_file):
    source = _write(tmp_path, thighs_ct)
    before = fingerprint(source)
    out = tmp_path / "results"
    proc = _cli(source, "--out", out, "--model", random_model_file)
    _wait_for(proc, "writing labels.nii.gz")
    for _ in range(50):  # a clean-up script, a colleague, an unmounted share (the run may add a file meanwhile)
        try:
            shutil.rmtree(out)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.05)
    proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=1800)
    assert proc.returncode == 2
    assert "the output folder disappeared" in _one_error_line(err)
    assert not out.exists()
    assert fingerprint(source) == before


def test_an_unexpected_error_is_one_line_and_the_traceback_comes_with_debug(tmp_path, capsys, monkeypatch):
    """A bug (not a bad input) still gives one line, with exit code 1; --debug shows the traceback."""
    from ThighMuscleSegLib.cli import evaluate

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(evaluate, "run", broken)
    assert main(["evaluate", str(tmp_path), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError: a bug" in err and "--debug" in err
    assert main(["evaluate", str(tmp_path), str(tmp_path), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("thighseg evaluate: internal error")


def test_a_nii_gz_of_several_gzip_members_passes_the_check(tmp_path, thighs_ct, monkeypatch):
    """What thighseg itself writes (gzip members compressed in parallel) is whole, not damaged."""
    from ThighMuscleSegLib import gzipio

    monkeypatch.setattr(gzipio, "BLOCK_BYTES", 64 * 1024)
    path = tio.write_image(thighs_ct, tmp_path / "ct.nii.gz")
    assert path.read_bytes().count(b"\x1f\x8b\x08") > 5
    ct = tio.read_ct(path, thighs=True)
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(thighs_ct))


# --- the same on a phantom's DICOM series ---------------------------------------------------------------

@pytest.fixture(scope="module")
def phantom_ct(small_phantom) -> sitk.Image:
    return sitk.ReadImage(str(small_phantom / "ct.nii.gz"))


def test_a_phantom_series_with_one_slice_removed(segment, tmp_path, phantom_ct):
    write_ct_series(phantom_ct, tmp_path / "dicom", drop=(100,))
    refused(segment, tmp_path, tmp_path / "dicom", "a gap in its slices: 1 slice missing",
            "ct_0099.dcm and ct_0101.dcm", "--allow-gaps")
    ct = tio.read_ct(tmp_path / "dicom", allow_gaps=True, thighs=True)
    assert tio.same_geometry(ct, phantom_ct, 1e-3)
    got, want = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(phantom_ct)
    assert np.array_equal(np.delete(got, 100, axis=0), np.delete(want, 100, axis=0))


def test_a_phantom_series_with_two_extra_series(tmp_path, phantom_ct):
    from pydicom.uid import generate_uid

    study = generate_uid()
    write_ct_series(phantom_ct, tmp_path / "dicom" / "ct", study=study, description="Thighs 3.0")
    write_scout(phantom_ct, tmp_path / "dicom" / "scout", study)
    write_dose_report(tmp_path / "dicom" / "sr", study)
    ct = tio.read_ct(tmp_path / "dicom", thighs=True)
    assert "Thighs 3.0" in ct.GetMetaData("series")
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(phantom_ct))
    note = " ".join(tio.input_notes(ct))
    assert "a localizer (scout)" in note and "a structured report" in note


def test_a_phantom_series_written_as_jpeg_ls(tmp_path, phantom_ct):
    pytest.importorskip("jpeg_ls")
    write_ct_series(phantom_ct, tmp_path / "dicom", syntax="1.2.840.10008.1.2.4.80")
    ct = tio.read_ct(tmp_path / "dicom", thighs=True)
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(phantom_ct))
    assert tio.same_geometry(ct, phantom_ct, 1e-3)


def test_an_output_folder_deleted_while_writing_is_not_made_again(tmp_path, thighs_ct):
    """atomic_path makes missing parents: a deleted output folder must end the writing, not be
    made again with half the results in it."""
    from ThighMuscleSegLib.outputs import StagedOutputs

    out = tmp_path / "results"
    with pytest.raises(tio.OutputError, match="the output folder disappeared"):
        with StagedOutputs(out) as stage:
            tio.write_image(thighs_ct, stage.path("labels.nii.gz"))
            shutil.rmtree(out)
            tio.write_image(thighs_ct, stage.path("disagreement.nii.gz"))
    assert not out.exists()


def _write_labels_under_a_file_size_limit(folder: str) -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    labels = synthetic_thighs()[1]  # 460 800 voxels: ITK's raw NIfTI cannot be written whole
    try:
        tio.write_image(labels, Path(folder) / "labels.nii.gz")
    except OSError as e:
        print(f"OSError {e.errno}")
        return
    print("written")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_short_write_by_itk_is_an_error_not_a_cut_file(tmp_path):
    """ITK's NIfTI writer only prints 'wrote only N of M bytes' when a write fails: the file
    written is checked, so a full disk or a size limit never leaves a cut labels.nii.gz."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from test_bad_inputs import _write_labels_under_a_file_size_limit as w; w({str(tmp_path)!r})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.stdout.strip() == "OSError 27", (r.stdout, r.stderr[-2000:])  # EFBIG
    assert os.listdir(tmp_path) == []  # no cut file, no temporary
