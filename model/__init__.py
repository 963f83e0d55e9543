"""Headless core of UGAAR Explorer.

Data, rendering, features, networks, training, retrieval and evaluation.
Nothing in this package imports Qt: the desktop app (``ugaar_app``) and the
command line (``ugaar``) are two views over the same functions.
"""

__version__ = "0.1.0"
