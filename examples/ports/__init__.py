"""Published example pipelines ported to mlflowlet (see README.md, one package per original)."""
