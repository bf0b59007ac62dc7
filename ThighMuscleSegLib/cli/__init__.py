"""The ``thighseg`` command: one module per subcommand, each thin over the library.

A subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit code). Modules are imported only when their command runs,
so ``thighseg --help`` stays fast and imports no torch.
"""
