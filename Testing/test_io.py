"""Reading CT safely: every kind of bad input gets a clear error; writes never damage files."""

import os

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_image
from ThighMuscleSegLib import io as tio


def _ct(shape=(6, 16, 16), value=40):
    return make_image(np.full(shape, value, np.int16), spacing=(0.8, 0.8, 2.0), origin=(-50.0, -60.0, 700.0))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_reads_nifti_nrrd_mha_with_geometry(tmp_path, suffix):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(_ct(), str(path))
    img = tio.read_ct(path)
    assert img.GetSize() == (16, 16, 6)
    assert np.allclose(img.GetSpacing(), (0.8, 0.8, 2.0))
    assert np.allclose(img.GetOrigin(), (-50, -60, 700))


def test_missing_corrupt_and_wrong_files_say_what_is_wrong(tmp_path):
    with pytest.raises(tio.InputError, match="does not exist"):
        tio.read_ct(tmp_path / "nope.nii.gz")
    corrupt = tmp_path / "broken.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b this is not a volume")
    with pytest.raises(tio.InputError, match="corrupt or not a CT"):
        tio.read_ct(corrupt)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(tio.InputError, match="not a CT file"):
        tio.read_ct(text)
    flat = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.Image(10, 10, sitk.sitkInt16), str(flat))
    with pytest.raises(tio.InputError, match="2-D"):
        tio.read_ct(flat)


def _write_dicom_series(img, folder, series_uid, description, modality="CT"):
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        for tag, value in (("0020|000e", series_uid), ("0008|103e", description), ("0008|0060", modality),
                           ("0020|0032", "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, k))))),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(k + 1)),
                           ("0028|0030", "0.8\\0.8")):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_folder_with_two_series_picks_the_longer_ct_and_names_it(tmp_path):
    _write_dicom_series(_ct((3, 16, 16)), tmp_path / "dcm" / "scout", "1.2.826.0.1.1", "scout")
    _write_dicom_series(_ct((7, 16, 16), value=55), tmp_path / "dcm" / "thighs", "1.2.826.0.1.2", "thighs 2mm")
    series = tio.list_dicom_series(tmp_path / "dcm")
    assert {s.uid for s in series} == {"1.2.826.0.1.1", "1.2.826.0.1.2"}
    img = tio.read_ct(tmp_path / "dcm")
    assert img.GetSize()[2] == 7
    assert "thighs 2mm" in img.GetMetaData("series")
    assert np.allclose(img.GetSpacing()[2], 2.0, atol=1e-3)
    chosen = tio.read_ct(tmp_path / "dcm", series_uid="1.2.826.0.1.1")
    assert chosen.GetSize()[2] == 3
    with pytest.raises(tio.InputError, match="no series with UID"):
        tio.read_ct(tmp_path / "dcm", series_uid="9.9")


def test_empty_folder_is_not_a_dicom_series(tmp_path):
    with pytest.raises(tio.InputError, match="no DICOM series"):
        tio.read_ct(tmp_path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    dest = tmp_path / "labels.nii.gz"
    dest.write_bytes(b"precious")
    with pytest.raises(RuntimeError):
        with tio.atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert dest.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["labels.nii.gz"]


def test_write_image_replaces_atomically_and_keeps_geometry(tmp_path):
    dest = tmp_path / "out" / "ct.nii.gz"
    tio.write_image(_ct(), dest)
    back = sitk.ReadImage(str(dest))
    assert tio.same_geometry(back, _ct())
    assert sorted(os.listdir(dest.parent)) == ["ct.nii.gz"]


def test_written_files_get_normal_permissions_not_private_temp_ones(tmp_path):
    old = os.umask(0o022)
    try:
        dest = tio.write_image(_ct(), tmp_path / "ct.nii.gz")
    finally:
        os.umask(old)
    assert dest.stat().st_mode & 0o777 == 0o644


def test_nifti_gz_of_several_gzip_members_reads_back_whole(tmp_path, monkeypatch):
    """Blocks compressed in parallel are separate gzip members; ITK must read all of them."""
    import gzip

    from ThighMuscleSegLib import gzipio

    monkeypatch.setattr(gzipio, "BLOCK_BYTES", 4096)  # a 64 KB image -> many members
    rng = np.random.default_rng(0)
    img = make_image(rng.integers(-1000, 2000, (16, 32, 64)).astype(np.int16), spacing=(0.7, 0.7, 1.5),
                     origin=(1.0, 2.0, 3.0))
    dest = tio.write_image(img, tmp_path / "ct.nii.gz")
    assert len(gzip.open(dest).read()) == 352 + img.GetNumberOfPixels() * 2  # header + int16 voxels
    raw = dest.read_bytes()
    assert raw.count(b"\x1f\x8b\x08") >= 16  # really several members
    back = sitk.ReadImage(str(dest))
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))
    assert tio.same_geometry(back, img)
    assert os.listdir(tmp_path) == ["ct.nii.gz"]  # no uncompressed temporary left behind


def test_failed_nifti_gz_write_leaves_no_temporaries(tmp_path, monkeypatch):
    from ThighMuscleSegLib import gzipio

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    (tmp_path / "ct.nii.gz").write_bytes(b"precious")
    monkeypatch.setattr(gzipio, "gzip_file", disk_full)
    with pytest.raises(OSError):
        tio.write_image(_ct(), tmp_path / "ct.nii.gz")
    assert os.listdir(tmp_path) == ["ct.nii.gz"]
    assert (tmp_path / "ct.nii.gz").read_bytes() == b"precious"
