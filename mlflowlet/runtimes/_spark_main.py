"""The SparkApplication's main file: ``spark-submit`` runs it in the driver.

It runs :func:`mlflowlet.entrypoint.main` (absolute imports: Spark runs this file as a script), so
the handler runs in the driver with the run spec from ``MLFLOWLET_EXEC_CONFIG`` and reaches the
driver's session as ``context.spark``.
"""

import sys

from mlflowlet.entrypoint import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
