"""spark-submit entry for the catalog stage: spark-submit jobs/catalog.py --library ROOT [...]."""

import sys

from leakfree.cli import main

if __name__ == "__main__":
    sys.exit(main(["catalog", *sys.argv[1:]]))
