"""Cohorts: ``thighseg batch`` over many CTs on Ray, resumable, one bad scan never stops the rest.

- :mod:`.manifest`: the cases of a cohort from folders of CT files, DICOM trees and CSV manifests
  (:func:`discover_cases`), with the content fingerprint that resume compares.
- :mod:`.dicomtree`: a DICOM tree grouped by SeriesInstanceUID, one CT series per study.
- :mod:`.worker`: one case through the same library calls as ``thighseg segment``
  (:func:`segment_case`), and the Ray actor that loads the model once and runs case after case.
- :mod:`.table`: the cohort table (``cohort.csv``, ``cohort.parquet``) and the per-case records
  it is rebuilt from.
- :mod:`.resume`: what a batch keeps and what it runs again (:func:`plan`), and the output
  folder's lock.
- :mod:`.cluster`: the Ray it runs on (a local one or a cluster) and the workers' resources.
- :mod:`.runner`: the batch itself (:func:`run_batch`): dispatch over Ray, atomic case folders,
  cancel.
- :mod:`.report`: ``cohort_report.png``.

Ray, pyarrow and tqdm are the ``[batch]`` extra; nothing here imports them at module level.
"""

from .manifest import Case, discover_cases  # noqa: F401
