"""``thighseg web``: a browser UI for the Slicer module's logic on trame-slicer (slicer-core's MRML,
views and segment editor behind a web page). Needs the ``[web]`` extra; see docs/web.md."""
