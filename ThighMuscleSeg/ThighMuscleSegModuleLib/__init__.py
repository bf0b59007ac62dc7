"""What the Slicer module does to the MRML scene, without Qt.

Everything here runs against real MRML, inside Slicer and headless with PyPI's
``slicer-core`` (that is how the tests drive it). The panel in ``ThighMuscleSeg.py``
only wires widgets to these functions.
"""
