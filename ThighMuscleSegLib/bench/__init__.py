"""Benchmarks beyond ``thighseg bench``'s own pipeline: the peer networks (``peers``) that the
2.5D views are compared with, built and run the way their tools run them. Needs the optional
``[bench]`` extra (dynamic-network-architectures, monai); nothing else in the library imports it."""
