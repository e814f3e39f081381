"""spark-submit entry for the nightly rescan: spark-submit jobs/rescan.py --library ROOT [...]."""

import sys

from leakfree.cli import main

if __name__ == "__main__":
    sys.exit(main(["rescan", *sys.argv[1:]]))
