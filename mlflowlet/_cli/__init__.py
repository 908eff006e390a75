"""Command modules of the ``mlflowlet`` command line; see :mod:`mlflowlet.cli` for the layout."""
