"""``thighseg batch`` on a real Ray cluster started here (``ray start --head`` on 127.0.0.1, stopped
at the end by process id): good cases equal ``thighseg segment``; a truncated file and a CT without
thighs are failed rows while the others finish; a second run skips everything; a changed input
runs again, a touched one does not; ``--retry-failed``; a run stopped halfway and restarted
finishes every case exactly once. Discovery (folders, DICOM trees, CSV manifests) and the tables
are tested without Ray. Random model weights: the files and the bookkeeping are tested here.

Set THIGHSEG_TEST_RAY_START_NICE (e.g. 0) on a machine so loaded that Ray's helpers cannot start
within Ray's fixed 15 s: ``ray start`` then runs at that priority and every process of the test
cluster is put back to the test's own priority before any case runs.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ThighMuscleSegLib.cohort import discover_cases
from ThighMuscleSegLib.cohort.table import BASE_COLUMNS, measurement_column_names, read_table

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("THIGHSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
KNEE = SHARED / "visible-human-female" / "ct" / "vhf_knee_ct.nii.gz"
SEGMENT_OUTPUTS = {"segmentation.seg.nrrd", "labels.nii.gz", "disagreement.nii.gz", "volumes.csv",
                   "measurements.csv", "report.png", "frames.json", "slabs.csv", "profiles.csv",
                   "profiles.png"}


def thighseg(*args, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "ThighMuscleSegLib.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout, **kw)


# ---------------------------------------------------------------------------------------------
# A real Ray cluster on 127.0.0.1, for this module only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_processes(psutil, marker: str) -> list:
    """The processes of the test cluster (their command lines name its temp dir) and their children."""
    found = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(marker in part for part in (p.info["cmdline"] or [])):
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


def _stop_cluster(psutil, marker: str) -> None:
    procs = _cluster_processes(psutil, marker)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="module")
def ray_address():
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e .[batch]")
    psutil = pytest.importorskip("psutil")
    temp = tempfile.mkdtemp(prefix="tsray", dir="/tmp" if os.path.isdir("/tmp") else None)  # short: socket paths
    port = _free_port()
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a throw-away cluster; the drivers below inherit this
    os.environ.pop("RAY_ADDRESS", None)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}",
           "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    start_nice = os.environ.get("THIGHSEG_TEST_RAY_START_NICE")
    preexec = (lambda: os.setpriority(os.PRIO_PROCESS, 0, int(start_nice))) if start_nice else None
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=preexec)
        if start_nice:  # back to the test's own priority before any case is computed
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            for p in _cluster_processes(psutil, temp):
                try:
                    os.setpriority(os.PRIO_PROCESS, p.pid, mine)
                except (ProcessLookupError, PermissionError):
                    pass
        assert r.returncode == 0, f"ray start failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(psutil, temp)
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------------------------
# A tiny cohort: a small phantom, a changed copy of it, a truncated file, the knee CT (no thigh)


def _write_shifted(src: Path, dest: Path, hu: int) -> None:
    ct = sitk.ReadImage(str(src))
    dest.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.Cast(ct + hu, ct.GetPixelID()), str(dest), True)


@pytest.fixture(scope="module")
def cohort(small_phantom, tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    data = root / "data"
    shutil.copytree(small_phantom, data / "case_a")  # a dataset case folder (ct.nii.gz, labels.nii.gz)
    _write_shifted(small_phantom / "ct.nii.gz", data / "case_b" / "ct.nii.gz", 1)
    raw = (small_phantom / "ct.nii.gz").read_bytes()
    bad = root / "broken.nii.gz"
    bad.write_bytes(raw[: len(raw) // 3])  # a truncated download
    manifest = root / "manifest.csv"
    rows = ["case_id,path,subject,date,height_cm"]
    if KNEE.is_file():
        rows.append(f"knee,{KNEE},VHF,1994-11-28,")
    manifest.write_text("\n".join(rows) + "\n")
    return {"root": root, "data": data, "bad": bad, "manifest": manifest,
            "inputs": [data, bad, manifest], "expected": {"case_a", "case_b", "broken"} | ({"knee"} if KNEE.is_file()
                                                                                         else set())}


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def _rows(out: Path) -> dict[str, dict]:
    return {r["case_id"]: r for r in read_table(out / "cohort.csv")}


def _assert_consistent(out: Path) -> dict[str, dict]:
    """The tables agree with each other and with the case folders; no half-written folder."""
    import pyarrow.parquet as pq

    rows = _rows(out)
    table = pq.read_table(out / "cohort.parquet").to_pylist()
    assert sorted(r["case_id"] for r in table) == sorted(rows)
    folders = {p.name for p in (out / "cases").iterdir()} if (out / "cases").exists() else set()
    assert not [f for f in folders if f.startswith(".")], f"left-over staging folders: {folders}"
    with_results = {k for k, r in rows.items() if r["status"] in ("done", "skipped")}
    assert folders == with_results
    for case_id in folders:
        assert SEGMENT_OUTPUTS <= set(os.listdir(out / "cases" / case_id)), case_id
    for r in rows.values():
        assert r["status"] in ("done", "failed", "skipped")
        assert (r["status"] == "failed") == bool(r["error"])
    return rows


@pytest.fixture(scope="module")
def first_run(cohort, ray_address, random_model_file):
    out = cohort["root"] / "out"
    t0 = time.perf_counter()
    r = thighseg("batch", *cohort["inputs"], "--out", out, "--address", ray_address, "--workers", "2",
                 "--model", random_model_file, "--device", "cpu", "--progress", "json")
    return r, out, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Discovery and tables, without Ray


def test_folders_files_and_a_manifest_give_the_cases_with_their_ids(tmp_path, small_phantom):
    data = tmp_path / "data"
    shutil.copytree(small_phantom, data / "case_000")
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(small_phantom / "ct.nii.gz", loose / "patient 7 visit1.nii.gz")
    shutil.copy(small_phantom / "labels.nii.gz", loose / "patient7_labels.nii.gz")  # never taken as a CT
    manifest = tmp_path / "m.csv"
    manifest.write_text("case_id,path,subject,date,height_cm\nv2,loose/patient 7 visit1.nii.gz,P7,20240131,172.5\n")
    assert {c.case_id for c in discover_cases([loose]).cases} == {"patient_7_visit1"}
    found = discover_cases([data, loose, manifest])
    by_id = {c.case_id: c for c in found.cases}
    assert set(by_id) == {"case_000", "v2"}  # the loose file once, under the manifest's id and details
    assert by_id["case_000"].input.endswith("case_000/ct.nii.gz") and by_id["case_000"].source == "dataset"
    assert by_id["case_000"].height_cm  # the phantom's stature from its case.json
    v2 = by_id["v2"]
    assert (v2.subject, v2.date, v2.height_cm) == ("P7", "2024-01-31", 172.5)
    assert Path(v2.input) == (loose / "patient 7 visit1.nii.gz").absolute()
    again = discover_cases([data, loose, manifest])  # the same command finds the same ids
    assert [c.case_id for c in again.cases] == [c.case_id for c in found.cases]


def test_a_manifest_without_its_columns_is_refused_with_the_columns_named(tmp_path):
    from ThighMuscleSegLib.io import InputError

    bad = tmp_path / "m.csv"
    bad.write_text("id,file\na,b.nii.gz\n")
    with pytest.raises(InputError, match="case_id,path"):
        discover_cases([bad])


def _dicom_series(folder: Path, *, patient: str, study: str, date: str, modality: str = "CT", slices: int = 12,
                  spacing: float = 10.0, image_type=("ORIGINAL", "PRIMARY", "AXIAL")) -> str:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, generate_uid()
        ds.Modality, ds.PatientID, ds.StudyDate = modality, patient, date
        ds.ImageType = list(image_type)
        ds.SeriesDescription = f"{modality} {len(image_type)}"
        ds.ImagePositionPatient = [0.0, 0.0, k * spacing]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.Rows, ds.Columns = [1.0, 1.0], 8, 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.zeros((8, 8), np.int16).tobytes()
        pydicom.dcmwrite(folder / f"im{k:03d}", ds, enforce_file_format=True)  # no suffix, as on many PACS exports
    return series


def test_a_dicom_tree_gives_one_case_per_study_with_its_patient_and_date(tmp_path):
    from pydicom.uid import generate_uid

    tree = tmp_path / "export"
    s1, s2, s3 = generate_uid(), generate_uid(), generate_uid()
    ct1 = _dicom_series(tree / "A" / "2023" / "ct", patient="A", study=s1, date="20230105")
    _dicom_series(tree / "A" / "2023" / "mr", patient="A", study=s1, date="20230105", modality="MR")  # not CT
    _dicom_series(tree / "A" / "2023" / "scout", patient="A", study=s1, date="20230105", slices=2,
                  image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    ct2 = _dicom_series(tree / "A" / "2024" / "ct", patient="A", study=s2, date="20240610")
    _dicom_series(tree / "A" / "2024" / "short", patient="A", study=s2, date="20240610", slices=12, spacing=5.0)
    _dicom_series(tree / "B" / "thin", patient="B", study=s3, date="20231120", slices=12, spacing=2.0)
    ct3 = _dicom_series(tree / "B" / "ct", patient="B", study=s3, date="20231120")
    (tree / "README.txt").write_text("not DICOM")
    found = discover_cases([tree])
    cases = sorted(found.cases, key=lambda c: (c.subject, c.date))
    assert [(c.subject, c.date, c.series_uid) for c in cases] == [
        ("A", "2023-01-05", ct1), ("A", "2024-06-10", ct2), ("B", "2023-11-20", ct3)]
    assert all(c.source == "dicom" and len(c.files) == 12 for c in cases)
    assert cases[0].input.endswith(os.path.join("A", "2023", "ct"))
    assert cases[0].case_id.startswith("A_20230105_")
    notes = " | ".join(found.notes)
    assert "modality MR, not CT" in notes and "a localizer" in notes and "longer CT series" in notes
    assert "covers 22 mm" in notes


def test_tables_have_the_contract_columns_and_parquet_matches_csv(tmp_path):
    import pyarrow.parquet as pq

    from ThighMuscleSegLib.cohort.table import write_tables

    rows = [{"case_id": "b", "input": "/x/b.nii.gz", "subject": "S", "date": "2024-01-01", "status": "failed",
             "error": "cannot read b.nii.gz", "seconds": 0.5, "device": ""},
            {"case_id": "a", "input": "/x/a.nii.gz", "subject": "S", "date": "2023-01-01", "status": "done",
             "error": "", "seconds": 12.25, "device": "cpu",
             "measurements": {"right_sartorius_volume_cm3": 101.5, "left_sartorius_volume_cm3": 99.0,
                              "right_sartorius_voxels": 1234, "right_sartorius_quality": "ok"}}]
    csv_path, pq_path = write_tables(tmp_path, rows)
    header = next(csv.reader(open(csv_path, encoding="utf-8")))
    assert header[:len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    for col in ("case_id", "input", "subject", "date", "status", "error", "seconds", "device"):
        assert col in header
    assert "right_vastus_lateralis_volume_cm3" in header and "left_semimembranosus_mean_hu" in header
    assert set(measurement_column_names()) <= set(header)
    table = pq.read_table(pq_path)
    assert table.column_names == header
    got = table.to_pylist()
    assert [r["case_id"] for r in got] == ["a", "b"]
    assert got[0]["right_sartorius_volume_cm3"] == 101.5 and got[0]["right_sartorius_voxels"] == 1234
    assert got[1]["right_sartorius_volume_cm3"] is None and got[1]["error"] == "cannot read b.nii.gz"
    assert read_table(csv_path)[0]["right_sartorius_volume_cm3"] == "101.5"


# ---------------------------------------------------------------------------------------------
# On Ray


def test_good_cases_finish_and_bad_ones_are_failed_rows_with_their_message(first_run, cohort):
    r, out, seconds = first_run
    assert r.returncode == 1, r.stderr[-3000:]  # some cases failed: exit 1, the table says which
    rows = _assert_consistent(out)
    assert set(rows) == cohort["expected"]
    assert rows["case_a"]["status"] == rows["case_b"]["status"] == "done"
    assert rows["broken"]["status"] == "failed"
    assert "broken.nii.gz" in rows["broken"]["error"]
    if "knee" in rows:
        knee = rows["knee"]
        assert knee["status"] == "failed" and knee["error"] and "Error:" not in knee["error"]  # the library's words
        assert (knee["subject"], knee["date"]) == ("VHF", "1994-11-28")
    a = rows["case_a"]
    assert a["device"] == "cpu" and float(a["seconds"]) > 0 and float(a["cpu_seconds"]) > 0
    assert float(a["peak_rss_mb"]) > 50 and a["input_sha256"] and a["height_cm"]
    volumes = list(csv.DictReader(open(out / "cases" / "case_a" / "volumes.csv", encoding="utf-8")))
    for v in volumes:  # the table's measurements are the case folder's volumes.csv
        assert float(a[f"{v['side']}_{v['muscle']}_volume_cm3"]) == pytest.approx(float(v["volume_cm3"]), abs=1e-3)
    measured = list(csv.DictReader(open(out / "cases" / "case_a" / "measurements.csv", encoding="utf-8")))
    for m in measured:  # and its measurements.csv's composition and group columns
        col = "sd_hu" if m["kind"] == "muscle" else "volume_cm3"
        if m[col]:
            assert float(a[f"{m['side']}_{m['muscle']}_{col}"]) == pytest.approx(float(m[col]), abs=1e-3)
    assert (out / "cohort_report.png").stat().st_size > 20_000
    events = _json_lines(r.stdout)
    assert all({"stage", "percent"} <= e.keys() for e in events)
    assert events[-1]["stage"] == "done" and events[-1]["failed"] == len(cohort["expected"]) - 2
    assert sorted(e["case_id"] for e in events if e["stage"] == "case") == sorted(cohort["expected"])
    print(f"first run of {len(rows)} cases: {seconds:.1f} s")


def test_a_good_case_equals_thighseg_segment_on_the_same_file(first_run, cohort, random_model_file, tmp_path):
    _, out, _ = first_run
    ref = tmp_path / "segment"
    r = thighseg("segment", cohort["data"] / "case_a" / "ct.nii.gz", "--out", ref, "--model", random_model_file,
                 "--device", "cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    case = out / "cases" / "case_a"
    assert set(os.listdir(case)) == set(os.listdir(ref)) == SEGMENT_OUTPUTS
    for name in ("labels.nii.gz", "disagreement.nii.gz"):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(case / name)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(ref / name)))
        assert np.array_equal(a, b), name
    assert (case / "volumes.csv").read_text(encoding="utf-8") == (ref / "volumes.csv").read_text(encoding="utf-8")


def test_a_second_run_skips_everything_without_starting_a_worker(first_run, cohort, random_model_file):
    _, out, _ = first_run
    before = _rows(out)
    t0 = time.perf_counter()
    r = thighseg("batch", *cohort["inputs"], "--out", out, "--address", "127.0.0.1:1",  # never reached
                 "--model", random_model_file, "--progress", "json")
    seconds = time.perf_counter() - t0
    assert r.returncode == 1, r.stderr[-3000:]  # the failed rows are still failed
    rows = _assert_consistent(out)
    assert {k: r["status"] for k, r in rows.items()} == {
        k: ("skipped" if v["status"] == "done" else "failed") for k, v in before.items()}
    assert all(rows[k]["finished_at"] == before[k]["finished_at"] for k in rows)
    assert not [e for e in _json_lines(r.stdout) if e["stage"] == "case"]
    print(f"second run (all kept): {seconds:.1f} s")


def test_a_changed_input_runs_again_a_touched_one_not_and_failed_ones_only_on_request(
        first_run, cohort, ray_address, random_model_file):
    _, out, _ = first_run
    before = _rows(out)
    a, b = cohort["data"] / "case_a" / "ct.nii.gz", cohort["data"] / "case_b" / "ct.nii.gz"
    os.utime(a, (time.time() + 5, time.time() + 5))  # touched: same content
    _write_shifted(a, b, 2)  # changed content
    r = thighseg("batch", *cohort["inputs"], "--out", out, "--address", ray_address, "--workers", "1",
                 "--model", random_model_file, "--device", "cpu", "--progress", "json")
    rows = _assert_consistent(out)
    assert rows["case_a"]["status"] == "skipped" and rows["case_a"]["finished_at"] == before["case_a"]["finished_at"]
    assert rows["case_b"]["status"] == "done" and rows["case_b"]["input_sha256"] != before["case_b"]["input_sha256"]
    assert rows["broken"]["finished_at"] == before["broken"]["finished_at"]  # not retried
    assert [e["case_id"] for e in _json_lines(r.stdout) if e["stage"] == "case"] == ["case_b"]

    r = thighseg("batch", *cohort["inputs"], "--out", out, "--address", ray_address, "--workers", "1",
                 "--model", random_model_file, "--device", "cpu", "--progress", "json", "--retry-failed")
    rows = _assert_consistent(out)
    retried = sorted(e["case_id"] for e in _json_lines(r.stdout) if e["stage"] == "case")
    assert retried == sorted(k for k, v in before.items() if v["status"] == "failed")
    assert rows["broken"]["status"] == "failed" and rows["broken"]["finished_at"] != before["broken"]["finished_at"]
    assert rows["case_a"]["status"] == rows["case_b"]["status"] == "skipped"


def test_a_run_stopped_halfway_and_restarted_finishes_every_case_exactly_once(
        small_phantom, tmp_path, ray_address, random_model_file):
    """Three cases, one worker, SIGTERM as soon as the first is finished: the case in flight may
    still finish, the third never starts, so the stop always lands halfway (no race to skip)."""
    from ThighMuscleSegLib.phantom.writer import write_dicom_series

    data = tmp_path / "data"
    shutil.copytree(small_phantom, data / "first")
    _write_shifted(small_phantom / "ct.nii.gz", data / "second" / "ct.nii.gz", 5)  # other content: its own case, not a duplicate
    write_dicom_series(sitk.ReadImage(str(small_phantom / "ct.nii.gz")), tmp_path / "dicom" / "series", seed=11)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "ThighMuscleSegLib.cli.main", "batch", data, tmp_path / "dicom", "--out", out,
            "--address", ray_address, "--workers", "1", "--model", random_model_file, "--device", "cpu",
            "--progress", "json"]
    proc = subprocess.Popen(list(map(str, args)), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:  # stop it as soon as the first case is finished
            lines.append(line)
            if '"stage": "case"' in line:
                proc.send_signal(signal.SIGTERM)
                break
        rest, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = _json_lines("".join(lines) + rest)
    assert proc.returncode == 130, err[-3000:]
    assert events[-1]["stage"] == "cancelled"
    rows = _assert_consistent(out)
    assert 1 <= len(rows) < 3 and {v["status"] for v in rows.values()} == {"done"}
    finished_before = {k: v["finished_at"] for k, v in rows.items()}

    r = thighseg("batch", data, tmp_path / "dicom", "--out", out, "--address", ray_address, "--workers", "1",
                 "--model", random_model_file, "--device", "cpu", "--progress", "json")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _assert_consistent(out)
    assert len(rows) == 3 and {v["status"] for v in rows.values()} <= {"done", "skipped"}
    for case_id, finished_at in finished_before.items():  # kept, not segmented again
        assert rows[case_id]["status"] == "skipped" and rows[case_id]["finished_at"] == finished_at
    assert all(v["status"] == "done" for k, v in rows.items() if k not in finished_before)
    records = [json.loads(x) for x in (out / ".thighseg-batch" / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(rec["row"]["case_id"] for rec in records) == sorted(rows)  # each case segmented exactly once
    dicom = next(v for v in rows.values() if v["case_id"].startswith("PH"))
    assert dicom["subject"] == "PH000011" and "segmentation.dcm" in os.listdir(out / "cases" / dicom["case_id"])

def test_a_local_ray_runs_its_workers_at_the_commands_priority(monkeypatch):
    """Ray would start workers 15 nice levels lower; a batch started here keeps the user's priority."""
    import ray

    from ThighMuscleSegLib.cohort.cluster import connect as _connect

    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    assert _connect(ray, None)
    try:
        worker_niceness = ray.get(ray.remote(lambda: os.nice(0)).remote(), timeout=300)
    finally:
        ray.shutdown()
    assert worker_niceness == os.nice(0)
