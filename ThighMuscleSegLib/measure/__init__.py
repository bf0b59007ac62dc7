"""Measurements of a CT-space label map: what the CLI, batch and the Slicer module all report.

``volumes``: volume, mean HU and asymmetry per muscle and side (``volumes.csv``), and the
plain prior comparison by volume.
"""

from .volumes import (CSV_COLUMNS, NUM_LABELS, REQUIRED_COLUMNS, MuscleVolume, VolumeChange, asymmetry_percent,
                      compare_with_prior, label_counts, label_histogram, muscle_volumes, read_volumes_csv,
                      voxel_volume_cm3, write_volumes_csv)

__all__ = ["CSV_COLUMNS", "NUM_LABELS", "REQUIRED_COLUMNS", "MuscleVolume", "VolumeChange", "asymmetry_percent",
           "compare_with_prior", "label_counts", "label_histogram", "muscle_volumes", "read_volumes_csv",
           "voxel_volume_cm3", "write_volumes_csv"]
