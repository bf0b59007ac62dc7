"""Pictures of a segmentation as Slicer shows it, rendered offscreen without Qt.

Slicer's own displayable managers (from PyPI's ``slicer-core``) draw the scene into
offscreen VTK render windows: the segmentation's closed surfaces in a 3D view, and the
CT (soft-tissue window) with the segmentation overlaid in axial and coronal slice views.

Regenerate the README pictures (from the repository root)::

    PYTHONPATH=ThighMuscleSeg:. python -m ThighMuscleSegModuleLib.screenshots CT.nii.gz LABELS.nii.gz OUT_DIR
"""

from __future__ import annotations

import os

# EGL renders without a display server; it must be chosen before any render window exists.
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import vtk  # noqa: E402

import slicer  # noqa: E402
from ThighMuscleSegLib import io  # noqa: E402

SOFT_TISSUE_WINDOW = (400.0, 40.0)  # window, level in HU
VIEW_BACKGROUND = (0.0, 0.0, 0.0)
_3D_MANAGERS = ("vtkMRMLCameraDisplayableManager", "vtkMRMLViewDisplayableManager",
                "vtkMRMLModelDisplayableManager", "vtkMRMLSegmentationsDisplayableManager3D")
_2D_MANAGERS = ("vtkMRMLSegmentationsDisplayableManager2D",)
_SLICE_MARGIN = 1.1  # field of view beyond the muscles' extent
_3D_ZOOM = 1.15


def render_views(scene, ct_node, segmentation_node, out_dir, size=(800, 600)) -> dict[str, Path]:
    """Write view3d.png, slice_axial.png and slice_coronal.png into ``out_dir``.

    ``scene`` is a vtkMRMLScene or an object with ``.scene`` and ``.app_logic`` (the test
    harness). Nodes made for the views are removed again and the CT's window/level restored.
    """
    mrml_scene = getattr(scene, "scene", scene)
    app_logic = getattr(scene, "app_logic", None) or _application_logic(mrml_scene)
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise io.InputError(f"picture size {size} is too small: give at least 16 x 16 pixels")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bounds = _segmentation_bounds(segmentation_node)
    segmentation_node.CreateClosedSurfaceRepresentation()

    nodes_before = _node_ids(mrml_scene)
    display = ct_node.GetDisplayNode()
    saved_window = (display.GetAutoWindowLevel(), display.GetWindow(), display.GetLevel())
    try:
        display.SetAutoWindowLevel(0)
        display.SetWindowLevel(*SOFT_TISSUE_WINDOW)
        written = {"view3d": _render_3d(mrml_scene, app_logic, bounds, width, height,
                                        out_dir / "view3d.png")}
        for orientation in ("Axial", "Coronal"):
            path = out_dir / f"slice_{orientation.lower()}.png"
            written[f"slice_{orientation.lower()}"] = _render_slice(
                mrml_scene, app_logic, ct_node, orientation, bounds, width, height, path)
    finally:
        display.SetAutoWindowLevel(saved_window[0])
        if not saved_window[0]:
            display.SetWindowLevel(saved_window[1], saved_window[2])
        # Views, cameras, slice planes' models and transforms made here go again.
        for node_id in reversed(_node_ids(mrml_scene)):
            node = mrml_scene.GetNodeByID(node_id)
            if node_id not in nodes_before and node is not None:
                mrml_scene.RemoveNode(node)
    return written


def _node_ids(mrml_scene) -> list[str]:
    return [mrml_scene.GetNthNode(i).GetID() for i in range(mrml_scene.GetNumberOfNodes())]


def _application_logic(mrml_scene):
    logic = slicer.vtkMRMLApplicationLogic()
    logic.SetMRMLScene(mrml_scene)
    return logic


def _segmentation_bounds(segmentation_node) -> list[float]:
    bounds = [0.0] * 6
    segmentation_node.GetRASBounds(bounds)
    if bounds[0] > bounds[1]:
        raise io.InputError(f"segmentation '{segmentation_node.GetName()}' is empty: nothing to show")
    return bounds


def _offscreen_window(width: int, height: int):
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(width, height)
    window.SetMultiSamples(0)
    renderer = vtk.vtkRenderer()
    window.AddRenderer(renderer)
    # Displayable managers reach the window through its interactor.
    window.SetInteractor(vtk.vtkRenderWindowInteractor())
    return window, renderer


def _managers(factory, names, app_logic, renderer):
    for name in names:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    factory.SetMRMLApplicationLogic(app_logic)
    return factory.InstantiateDisplayableManagers(renderer)


def _render_3d(mrml_scene, app_logic, bounds, width, height, path: Path) -> Path:
    view = mrml_scene.AddNewNodeByClass("vtkMRMLViewNode")
    view.SetLayoutName("ThighMuscleSegScreenshot")
    view.SetBackgroundColor(*VIEW_BACKGROUND)
    view.SetBackgroundColor2(*VIEW_BACKGROUND)
    view.SetBoxVisible(0)
    view.SetAxisLabelsVisible(0)
    window, renderer = _offscreen_window(width, height)
    group = _managers(slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance(),
                      _3D_MANAGERS, app_logic, renderer)
    group.SetMRMLDisplayableNode(view)
    _frame_anterior(renderer, bounds)
    try:
        return _write_png(window, path)
    finally:
        group.SetMRMLDisplayableNode(None)


def _frame_anterior(renderer, bounds) -> None:
    """Look at the muscles from the front (patient's right on the left), superior up."""
    center = [(bounds[2 * k] + bounds[2 * k + 1]) / 2 for k in range(3)]
    camera = renderer.GetActiveCamera()
    camera.SetFocalPoint(*center)
    camera.SetPosition(center[0], center[1] + 1000.0, center[2])
    camera.SetViewUp(0.0, 0.0, 1.0)
    renderer.ResetCamera(bounds)  # keeps the direction, picks the distance that fits
    camera.Zoom(_3D_ZOOM)
    renderer.ResetCameraClippingRange()


def _render_slice(mrml_scene, app_logic, ct_node, orientation, bounds, width, height,
                  path: Path) -> Path:
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLScene(mrml_scene)
    logic.SetMRMLApplicationLogic(app_logic)
    slice_node = logic.AddSliceNode(f"ThighMuscleSeg{orientation}")
    getattr(slice_node, f"SetOrientationTo{orientation}")()
    logic.GetSliceCompositeNode().SetBackgroundVolumeID(ct_node.GetID())
    slice_node.SetDimensions(width, height, 1)
    center = [(bounds[2 * k] + bounds[2 * k + 1]) / 2 for k in range(3)]
    slice_node.JumpSliceByCentering(*center)  # the plane through the muscles' middle
    extent = [bounds[2 * k + 1] - bounds[2 * k] for k in range(3)]
    seen_w, seen_h = (extent[0], extent[1]) if orientation == "Axial" else (extent[0], extent[2])
    mm_per_pixel = _SLICE_MARGIN * max(seen_w / width, seen_h / height)
    slice_node.SetFieldOfView(width * mm_per_pixel, height * mm_per_pixel,
                              slice_node.GetFieldOfView()[2])
    slice_node.UpdateMatrices()

    window, renderer = _offscreen_window(width, height)
    # The slice logic's blended RGBA output is the slice view's picture, as in Slicer.
    mapper = vtk.vtkImageMapper()
    mapper.SetInputConnection(logic.GetImageDataConnection())
    mapper.SetColorWindow(255.0)
    mapper.SetColorLevel(127.5)
    image_actor = vtk.vtkActor2D()
    image_actor.SetMapper(mapper)
    image_actor.GetProperty().SetDisplayLocationToBackground()
    renderer.AddViewProp(image_actor)
    group = _managers(slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance(),
                      _2D_MANAGERS, app_logic, renderer)
    group.SetMRMLDisplayableNode(slice_node)
    try:
        return _write_png(window, path)
    finally:
        group.SetMRMLDisplayableNode(None)
        logic.SetMRMLScene(None)


def _write_png(window, path: Path) -> Path:
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    with io.atomic_path(path) as tmp:
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(tmp))
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
        if writer.GetErrorCode():
            raise OSError(f"could not write {path}")
    window.Finalize()
    return path


def offscreen_rendering_problem() -> str | None:
    """None when offscreen OpenGL works here, else why not (probed in a child process,
    because a missing GPU driver can abort the process that tries)."""
    probe = ("import vtk; w = vtk.vtkRenderWindow(); w.SetOffScreenRendering(1); w.SetSize(8, 8);"
             "w.AddRenderer(vtk.vtkRenderer()); w.Render();"
             "import sys; sys.exit(0 if w.SupportsOpenGL() else 3)")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=60, env=os.environ.copy())
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"offscreen OpenGL probe failed to run: {e}"
    if done.returncode == 0:
        return None
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return (f"offscreen OpenGL ({os.environ['VTK_DEFAULT_OPENGL_WINDOW']}) is not available "
            f"(exit {done.returncode}): {' | '.join(tail)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ThighMuscleSegModuleLib.screenshots",
        description="Render a CT and its muscle label map (right 1-10, left 11-20) as Slicer's "
                    "3D, axial and coronal views into PNG files.")
    parser.add_argument("ct", help="CT image (NIfTI, NRRD, ... or a DICOM folder)")
    parser.add_argument("labels", help="label map in the CT's space")
    parser.add_argument("out_dir", help="folder for view3d.png, slice_axial.png, slice_coronal.png")
    parser.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("W", "H"))
    args = parser.parse_args(argv)
    try:
        written = _render_files(args.ct, args.labels, args.out_dir, tuple(args.size))
    except io.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written.values():
        print(path)
    return 0


def _render_files(ct_path, labels_path, out_dir, size) -> dict[str, Path]:
    import SimpleITK as sitk

    from .headless import make_scene
    from .scene import segmentation_from_labels, volume_node_from_image

    ct = io.read_ct(ct_path)
    if not Path(labels_path).is_file():
        raise io.InputError(f"label map not found: {labels_path}")
    labels = sitk.ReadImage(str(labels_path))
    if not io.same_geometry(ct, labels):
        raise io.InputError(f"{labels_path} does not share the CT's grid (size, spacing, origin, "
                            "direction): resample it onto the CT first")
    problem = offscreen_rendering_problem()
    if problem:
        raise io.InputError(problem)
    harness = make_scene()
    ct_node = volume_node_from_image(harness.scene, ct, "CT")
    segmentation = segmentation_from_labels(harness.scene, labels, "Thigh muscles", reference_node=ct_node)
    segmentation.CreateClosedSurfaceRepresentation()
    return render_views(harness, ct_node, segmentation, out_dir, size)


if __name__ == "__main__":
    sys.exit(main())
