"""`python -m mtv.runner.worker <run dir>/config.yaml`: one DDP rank of a job (see mtv.runner.launch)."""

import sys

from mtv.runner.jobs import worker_main

if __name__ == "__main__":
    worker_main(sys.argv[1])
