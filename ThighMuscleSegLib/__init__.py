"""ThighMuscleSegLib: thigh muscle segmentation in CT (2.5D U-Net of Haque et al.).

A pure-Python library: it never imports ``slicer``, Qt or vtk at import time, so the
command line, batch scripts, tests and the 3D Slicer module all share it. Heavy
dependencies (torch, vtk) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
