"""``python -m mlflowlet``: the command line."""

from mlflowlet.cli import main

if __name__ == "__main__":
    main()
