"""spark-submit entry for the whole pipeline: spark-submit jobs/run.py --library ROOT [...]."""

import sys

from leakfree.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
