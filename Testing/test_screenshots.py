"""Offscreen pictures of the module's result, drawn by Slicer's displayable managers."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -e .[test]")

from ThighMuscleSegLib import classes as C  # noqa: E402
from ThighMuscleSegModuleLib import screenshots  # noqa: E402

SIZE = (320, 240)
NAMES = ("view3d", "slice_axial", "slice_coronal")


@pytest.fixture(scope="module")
def offscreen():
    problem = screenshots.offscreen_rendering_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def phantom_scene(mrml, offscreen):
    from ThighMuscleSegLib.phantom.synth import make_case
    from ThighMuscleSegModuleLib.scene import segmentation_from_labels, volume_node_from_image

    case = make_case(11, size="small")
    ct_node = volume_node_from_image(mrml.scene, case.ct, "CT")
    segmentation = segmentation_from_labels(mrml.scene, case.labels, "Muscles", reference_node=ct_node)
    segmentation.CreateClosedSurfaceRepresentation()
    return mrml, ct_node, segmentation


def read_png(path) -> np.ndarray:
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    w, h, _ = image.GetDimensions()
    channels = image.GetPointData().GetScalars().GetNumberOfComponents()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, channels)[..., :3]


def class_hues_present(rgb: np.ndarray, min_pixels: int = 40) -> set[str]:
    """Names of class colours whose hue shows on enough clearly coloured pixels.

    Shading (3D) and blending with grey CT (2D) change brightness and saturation, not hue much.
    """
    flat = rgb.reshape(-1, 3).astype(float) / 255.0
    mx, mn = flat.max(1), flat.min(1)
    coloured = (mx - mn > 0.12) & (mx > 0.2)
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in flat[coloured]]) if coloured.any() else np.zeros((0, 3))
    found = set()
    for seg in C.segments()[:C.NUM_MUSCLES]:
        hue = colorsys.rgb_to_hsv(*(v / 255.0 for v in seg.color))[0]
        distance = np.abs((hsv[:, 0] - hue + 0.5) % 1.0 - 0.5)
        if (distance < 0.025).sum() >= min_pixels:
            found.add(seg.name)
    return found


def test_views_are_written_at_the_requested_size_with_muscle_colours(phantom_scene, tmp_path):
    harness, ct_node, segmentation = phantom_scene
    window_before = (ct_node.GetDisplayNode().GetWindow(), ct_node.GetDisplayNode().GetLevel())
    nodes_before = harness.scene.GetNumberOfNodes()

    written = screenshots.render_views(harness, ct_node, segmentation, tmp_path / "pics", size=SIZE)

    assert set(written) == set(NAMES)
    for name in NAMES:
        path = written[name]
        assert path == tmp_path / "pics" / f"{name}.png" and path.is_file()
        rgb = read_png(path)
        assert rgb.shape[:2] == (SIZE[1], SIZE[0]), name
        assert rgb.std() > 10, f"{name} is blank"
        hues = class_hues_present(rgb)
        assert len(hues) >= 4, f"{name} shows only {sorted(hues)}"
    view3d = read_png(written["view3d"])
    assert view3d[:5, :5].max() < 20, "3D background should be dark"
    # The CT shows in the slice views: many grey pixels of different brightness.
    axial = read_png(written["slice_axial"]).astype(int)
    grey = (axial.max(2) - axial.min(2) < 8) & (axial.max(2) > 30)
    assert grey.sum() > 0.1 * axial.shape[0] * axial.shape[1]
    assert len(np.unique(axial[grey][:, 0])) > 20
    # The user's scene and CT display are left as they were.
    assert harness.scene.GetNumberOfNodes() == nodes_before
    assert (ct_node.GetDisplayNode().GetWindow(), ct_node.GetDisplayNode().GetLevel()) == window_before


def test_empty_segmentation_is_a_clear_error(mrml, offscreen, tmp_path):
    import SimpleITK as sitk

    from ThighMuscleSegLib import io
    from ThighMuscleSegModuleLib.scene import segmentation_from_labels, volume_node_from_image

    ct = sitk.Image(16, 16, 8, sitk.sitkInt16)
    ct_node = volume_node_from_image(mrml.scene, ct, "CT")
    segmentation = segmentation_from_labels(mrml.scene, sitk.Image(16, 16, 8, sitk.sitkUInt8), "Empty",
                                            reference_node=ct_node)
    with pytest.raises(io.InputError, match="empty"):
        screenshots.render_views(mrml, ct_node, segmentation, tmp_path)
    assert not any(tmp_path.iterdir())
