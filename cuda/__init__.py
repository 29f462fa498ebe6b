"""CUDA C sources of the GPU renderers, shipped as package data (``renderers.cuda`` once installed).

Locate a kernel with ``importlib.resources.files("renderers.cuda") / "gaf.cu"``.
"""
