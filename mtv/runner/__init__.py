"""Running experiments: the train / eval / profile tasks behind run.py, their processes and run directories.

`run.py` composes the Hydra config and calls `mtv.runner.jobs.run_job`; everything below works from a
plain, fully resolved config, so DDP worker processes can run the same code without Hydra.
"""
