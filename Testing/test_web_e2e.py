"""``thighseg web`` end to end in a real browser: Debian's chromium through Playwright, against the
real server (trame-slicer on slicer-core, offscreen EGL rendering) and the real segment subprocess.

One walk through the page, as a user would: a CT without thighs and a corrupt upload say what is
wrong; a cancelled run leaves no work folder; Segment thighs gives the 20 muscles with the volumes
``thighseg segment`` gives the same CT; painting into a muscle makes its volume rise; the case saved
for training reads back through the training data loader; the CSV export holds the edited table.
Screenshots of each step go to ``out/web-e2e/`` (git-ignored; README's picture is one of them).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from web_server import CHROMIUM, start_server, wait_until, work_dirs

pytestmark = pytest.mark.slow


def _missing() -> str:
    if importlib.util.find_spec("trame_slicer") is None:
        return 'the web UI is not installed: pip install -e ".[web]"'
    if importlib.util.find_spec("playwright") is None:
        return 'playwright is not installed: pip install -e ".[test]"'
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM}: apt-get install chromium (.ci/run does, as root)"
    return ""


@pytest.fixture(scope="module", autouse=True)
def _browser_stack():
    """Skip where the stack is missing; in CI (which installs it) fail instead of hiding it."""
    missing = _missing()
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)

REPO = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("THIGHSEG_WEB_SCREENSHOTS", REPO / "out" / "web-e2e"))
SEGMENT_TIMEOUT_MS = 600_000  # a loaded 2-core CI box, with the reference run beside it
STEP_TIMEOUT_MS = 120_000
PHANTOM_SEED = 3


def _thighseg(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ThighMuscleSegLib.cli.main", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The --data folder: a small phantom CT (thighseg phantom), a CT without thighs, a corrupt CT."""
    root = tmp_path_factory.mktemp("web-data")
    made = _thighseg("phantom", root, "--cases", 1, "--seed", PHANTOM_SEED, "--size", "small")
    out, _ = made.communicate(timeout=600)
    assert made.returncode == 0, out.decode("utf-8", "replace")
    z, y, x = np.mgrid[0:60, 0:80, 0:96]
    cylinder = np.where((x - 48) ** 2 + (y - 40) ** 2 < 30 ** 2, 20, -1000).astype(np.int16)  # water, no bone
    image = sitk.GetImageFromArray(cylinder)
    image.SetSpacing((4.0, 4.0, 6.0))
    sitk.WriteImage(image, str(root / "no_thighs.nii.gz"))
    return root


@pytest.fixture
def server(data, tmp_path):
    s = start_server(data, tmp_path / "dataset", tmp_path / "server")
    yield s
    s.stop()


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
            pg = context.new_page()
            pg.set_default_timeout(STEP_TIMEOUT_MS)
            pg.goto(server.url)
            pg.wait_for_selector("#ts-segment")
            yield pg
        finally:
            browser.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def status(page) -> str:
    return page.locator("#ts-status").text_content().strip()


def wait_status(page, *wanted: str, timeout=STEP_TIMEOUT_MS) -> str:
    page.wait_for_function("(w) => w.includes(document.querySelector('#ts-status').textContent.trim())",
                           arg=list(wanted), timeout=timeout)
    return status(page)


def pick(page, title: str, ct_name: str) -> None:
    """Choose a --data entry in the select and Open it; wait until the page shows it loaded."""
    page.locator("#ts-input").locator("xpath=ancestor::div[contains(@class, 'v-field ')][1]").click()
    page.locator(".v-overlay .v-list-item").filter(has_text=title).first.click()
    page.click("#ts-open")
    page.wait_for_function("(name) => (document.querySelector('#ts-ct-name') || {}).textContent?.trim() === 'CT: ' + name "
                           "&& document.querySelector('#ts-status').textContent.trim() === 'open'", arg=ct_name)


def table(page) -> list[dict]:
    heads = [h.strip() for h in page.locator("#ts-table thead th").all_text_contents()]
    rows = [dict(zip(heads, [c.strip() for c in r.locator("td").all_text_contents()]))
            for r in page.locator("#ts-table tbody tr").all()]
    return rows


def muscles(rows: list[dict]) -> dict[str, dict]:
    return {r["Label"]: r for r in rows if r["Label"]}


def test_segment_review_edit_save_export_in_a_browser(page, server, data, tmp_path):
    ct = data / "case_000" / "ct.nii.gz"
    reference = _thighseg("segment", ct, "--out", tmp_path / "reference")  # thighseg segment on the same CT
    try:
        shot(page, "01-page")

        # A CT without thighs: the run ends with the message, the page stays usable.
        pick(page, "no_thighs.nii.gz", "no_thighs")
        page.click("#ts-segment")
        wait_status(page, "error", timeout=SEGMENT_TIMEOUT_MS)
        assert "no thigh" in page.locator("#ts-error").text_content().lower()
        shot(page, "02-no-thighs")

        # A corrupt file (a CT cut short) is refused in words when it is opened.
        broken = tmp_path / "broken.nii.gz"
        broken.write_bytes(ct.read_bytes()[: ct.stat().st_size // 3])
        page.locator("#ts-upload").set_input_files(str(broken))
        page.wait_for_function("(document.querySelector('#ts-error') || {}).textContent?.includes('broken.nii.gz')")
        assert "truncated" in page.locator("#ts-error").text_content()
        shot(page, "03-corrupt-file")
        page.locator("#ts-error button").click()

        # Cancel: the run stops, says so, and its work folder (CT copy, staged outputs) is gone.
        pick(page, "case_000/ct.nii.gz", "case_000 ct")
        page.click("#ts-segment")
        page.wait_for_function("document.querySelector('#ts-stage').textContent.includes('batch') || "
                               "['done', 'error'].includes(document.querySelector('#ts-status').textContent.trim())",
                               timeout=SEGMENT_TIMEOUT_MS)  # the model is at work
        assert status(page) == "running"
        page.click("#ts-cancel")
        assert wait_status(page, "cancelled", "done", "error") == "cancelled"
        assert "cancelled" in page.locator("#ts-stage").text_content()
        shot(page, "04-cancelled")
        wait_until(lambda: not work_dirs(server.tmp), 60, "the cancelled run's work folder to go")

        # Segment thighs: 20 muscles, each with thighseg segment's voxels and volume.
        page.click("#ts-segment")
        assert wait_status(page, "done", "error", timeout=SEGMENT_TIMEOUT_MS) == "done", \
            page.locator("#ts-error").all_text_contents()
        page.wait_for_selector("#ts-table tbody tr")
        shot(page, "05-segmented")
        from ThighMuscleSegLib.measure import read_volumes_csv

        out, _ = reference.communicate(timeout=SEGMENT_TIMEOUT_MS / 1000)
        assert reference.returncode == 0, out.decode("utf-8", "replace")
        expected = {str(v.label_value): v for v in read_volumes_csv(tmp_path / "reference" / "volumes.csv")}
        shown = muscles(table(page))
        assert sorted(shown, key=int) == [str(v) for v in range(1, 21)] == sorted(expected, key=int)
        for label, row in shown.items():
            assert row["Muscle"] == expected[label].name
            assert int(row["Voxels"]) == expected[label].voxels, row
            assert row["Volume (cm\u00b3)"] == f"{expected[label].volume_cm3:.2f}", row
        flagged = [v.name for v in expected.values() if v.quality == "check"]
        if flagged:  # the quality flags: marked in the table and named in the warning
            warning = page.locator("#ts-flagged").text_content()
            assert all(name in warning for name in flagged)
        assert not work_dirs(server.tmp), "the finished run's work folder was left behind"

        # The disagreement map as an overlay: the axial view changes when it is switched on.
        axial_view = page.locator("img.image-display-area").first
        plain = axial_view.screenshot()
        page.click("#ts-disagreement")
        wait_until(lambda: axial_view.screenshot() != plain, 60, "the disagreement overlay in the axial view")
        shot(page, "05-disagreement")
        page.click("#ts-disagreement")

        # Edit: paint into the right sartorius (the active segment) in the axial view; its volume rises in the table.
        page.click("#ts-tab-edit")
        active = page.locator(".v-navigation-drawer .v-list-item--active input").first  # the editor's first segment
        assert active.input_value() == "Right sartorius"
        page.locator(".v-navigation-drawer button:has(i.mdi-brush)").first.click()
        axial = page.locator("img.image-display-area").first.bounding_box()
        x, y = axial["x"] + axial["width"] * 0.25, axial["y"] + axial["height"] * 0.35
        page.mouse.move(x, y)
        page.mouse.down()
        for i in range(1, 21):
            page.mouse.move(x + i * axial["width"] * 0.01, y, steps=2)
        page.mouse.up()
        page.wait_for_function("document.querySelector('#ts-table-title').textContent.includes('after your edits')")
        edited = muscles(table(page))
        assert int(edited["1"]["Voxels"]) > expected["1"].voxels
        assert float(edited["1"]["Volume (cm\u00b3)"]) > expected["1"].volume_cm3
        shot(page, "06-painted")

        # Save as training case; the training data loader reads it back with the painted labels.
        page.click("#ts-tab-thighs")
        page.fill("#ts-case-name", "web_case")
        page.click("#ts-save")
        page.wait_for_selector("#ts-saved")
        shot(page, "07-saved")
        from ThighMuscleSegLib.training.data import find_cases, frame_case

        case = tmp_path / "dataset" / "web_case"
        assert find_cases(tmp_path / "dataset") == [case]
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz")))
        assert int((labels == 1).sum()) == int(edited["1"]["Voxels"])
        thighs = frame_case(case)
        assert sorted(t.name for t in thighs) == ["web_case/left", "web_case/right"]
        assert all(len(np.unique(t.ids)) > 5 for t in thighs)

        # Export the table: the CSV holds the edited volumes of all 20 muscles.
        with page.expect_download() as download:
            page.click("#ts-export-csv")
        saved = tmp_path / "export.csv"
        download.value.save_as(saved)
        with open(saved, newline="", encoding="utf-8") as f:
            exported = {r["Label"]: r for r in csv.DictReader(f) if r["Label"]}
        assert sorted(exported, key=int) == [str(v) for v in range(1, 21)]
        assert int(exported["1"]["Voxels"]) == int(edited["1"]["Voxels"])
        assert exported["2"]["Muscle"] == expected["2"].name

        # Export the segmentation: a .seg.nrrd with the edited labels on the CT's grid.
        with page.expect_download() as download:
            page.click("#ts-export-seg")
        seg_file = tmp_path / "export.seg.nrrd"
        download.value.save_as(seg_file)
        from ThighMuscleSegLib.segnrrd import read_seg_nrrd

        seg_labels, infos = read_seg_nrrd(seg_file, reference=sitk.ReadImage(str(ct)))
        assert sorted(i.label_value for i in infos if i.label_value) == list(range(1, 21))
        assert int((sitk.GetArrayViewFromImage(seg_labels) == 1).sum()) == int(edited["1"]["Voxels"])
        assert "Traceback" not in server.log_text()
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
