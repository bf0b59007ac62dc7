"""The report picture: written, the expected size, class colours drawn, 3D panel present."""

import numpy as np
import pytest
from matplotlib.image import imread

from synthetic_thighs import synthetic_thighs
from ThighMuscleSegLib import classes as C
from ThighMuscleSegLib.io import InputError
from ThighMuscleSegLib.measure import muscle_volumes
from ThighMuscleSegLib.render import write_report_png

ROTATED = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def _pixels(path):
    return (imread(str(path))[..., :3] * 255).round().astype(np.uint8)


def _has_color(rgb, color):
    return bool(np.all(rgb == np.array(color, np.uint8), axis=-1).any())


@pytest.mark.parametrize("direction", [None, ROTATED])
def test_report_png_has_size_and_class_colours(tmp_path, direction):
    ct, labels, disagreement = synthetic_thighs((64, 52, 40), (6.0, 6.0, 10.0), direction=direction)
    path = write_report_png(ct, labels, tmp_path / "report.png", disagreement=disagreement,
                            volumes=muscle_volumes(ct, labels), title="test")
    rgb = _pixels(path)
    assert rgb.shape == (1050, 1800, 3)
    for seg in C.segments():  # legend swatches and bars carry every class colour exactly
        assert _has_color(rgb, seg.color), seg.name
    # The 3D panel rendered (dark background) rather than the fallback note.
    background_3d = np.abs(rgb.astype(int) - (20, 20, 25)).sum(-1) <= 2
    assert background_3d.sum() > 50_000
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]


def test_notes_are_printed_in_red_under_the_title(tmp_path):
    ct, labels, _ = synthetic_thighs((32, 24, 16), (8.0, 8.0, 12.0))
    red = (0xC0, 0, 0)
    plain = _pixels(write_report_png(ct, labels, tmp_path / "plain.png"))
    noted = _pixels(write_report_png(ct, labels, tmp_path / "noted.png",
                                     notes=["the edge of the scanned field cuts the side of the right thigh"]))
    band = slice(0, 80)  # above the panels
    assert not _has_color(plain[band], red) and _has_color(noted[band], red)
    assert np.array_equal(plain[80:], noted[80:])


def test_report_refuses_labels_off_the_ct_grid(tmp_path):
    ct, labels, _ = synthetic_thighs((32, 24, 16), (8.0, 8.0, 12.0))
    _, other, _ = synthetic_thighs((32, 24, 16), (8.0, 8.0, 10.0))
    with pytest.raises(InputError, match="geometry"):
        write_report_png(ct, other, tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()
