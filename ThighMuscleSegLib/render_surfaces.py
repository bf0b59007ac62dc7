"""Offscreen 3D surface picture of the labelled muscles (vtk, imported only in here).

Surfaces come from vtkSurfaceNets3D on a downsampled label volume (all labels in one pass,
smoothed inside the filter), coloured per muscle from the class table, rendered offscreen
through EGL (no display needed) and returned as an RGB array.
"""

from __future__ import annotations

import os

import numpy as np

from . import classes as C


def render_muscle_surfaces(labels_spl: np.ndarray, spacing_lps: tuple[float, float, float],
                           size: tuple[int, int] = (520, 760), target_mm: float = 3.0,
                           azimuth: float = -25.0) -> np.ndarray:
    """RGB (h, w, 3) uint8 picture of the muscles seen from the front (patient's right on the left).

    ``labels_spl`` is indexed [S, P, L] (increasing toward superior, posterior, left) with
    ``spacing_lps`` the voxel size along (L, P, S) in mm. Raises RuntimeError when there is
    nothing to draw or offscreen rendering is unavailable.
    """
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D
    from vtkmodules.vtkRenderingCore import (vtkActor, vtkPolyDataMapper, vtkRenderer, vtkRenderWindow,
                                             vtkWindowToImageFilter)
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL back end)

    step = [max(1, int(round(target_mm / s))) for s in spacing_lps]  # (L, P, S)
    small = np.ascontiguousarray(labels_spl[::step[2], ::step[1], ::step[0]])
    if not small.any():
        raise RuntimeError("no labelled voxels to draw")
    # One voxel of background all round closes the surfaces where muscles touch the border.
    small = np.pad(small, 1)
    image = vtkImageData()
    image.SetDimensions(small.shape[2], small.shape[1], small.shape[0])
    image.SetSpacing(*(sp * st for sp, st in zip(spacing_lps, step)))
    image.GetPointData().SetScalars(numpy_to_vtk(small.ravel(), deep=True))

    nets = vtkSurfaceNets3D()
    nets.SetInputData(image)
    present = [int(v) for v in np.unique(small) if v > 0]
    for i, v in enumerate(present):
        nets.SetValue(i, v)
    nets.SetOutputMeshTypeToTriangles()
    nets.SetOutputStyleToBoundary()  # only faces against background: what is seen from outside
    nets.SmoothingOn()
    nets.SetNumberOfIterations(20)
    nets.Update()
    mesh = nets.GetOutput()
    if mesh.GetNumberOfCells() == 0:
        raise RuntimeError("surface extraction produced no triangles")

    # Each face separates two labels (one may be background): colour it by its muscle.
    pairs = vtk_to_numpy(mesh.GetCellData().GetArray("BoundaryLabels")).astype(int)
    muscle = np.where(pairs[:, 0] > 0, pairs[:, 0], pairs[:, 1])
    lut = np.zeros((256, 3), np.uint8)
    for seg in C.segments():
        lut[seg.label_value] = seg.color
    colors = numpy_to_vtk(lut[np.clip(muscle, 0, 255)], deep=True)
    colors.SetName("Colors")
    mesh.GetCellData().SetScalars(colors)

    normals = vtkPolyDataNormals()
    normals.SetInputData(mesh)
    normals.SetFeatureAngle(60)
    normals.SplittingOff()
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(normals.GetOutputPort())
    mapper.SetScalarModeToUseCellData()
    mapper.SetColorModeToDirectScalars()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetSpecular(0.25)
    actor.GetProperty().SetSpecularPower(20)

    renderer = vtkRenderer()
    renderer.AddActor(actor)
    renderer.SetBackground(0.08, 0.08, 0.1)
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(*size)
    camera = renderer.GetActiveCamera()
    cx, cy, cz = mesh.GetCenter()
    camera.SetFocalPoint(cx, cy, cz)
    camera.SetPosition(cx, cy - 1000.0, cz)  # anterior: -P in LPS; screen right = patient's left
    camera.SetViewUp(0, 0, 1)
    camera.Azimuth(azimuth)
    renderer.ResetCamera()
    camera.Zoom(1.15)
    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    out = grab.GetOutput()
    w, h, _ = out.GetDimensions()
    rgb = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
    window.Finalize()
    return np.ascontiguousarray(rgb)
