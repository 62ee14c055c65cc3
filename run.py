"""Train, evaluate or profile MTV models: `python run.py [task=train|eval|profile] [overrides] [-m]`.

Config groups and recipes are in conf/, their use in docs/experiments.md. Examples:

    python run.py                                          # small MTV on synthetic data, CPU, minutes
    python run.py -m experiment=table1a_view_assignment    # a Table 1 sweep (add debug=smoke for CPU)
    python run.py resume=outputs/train/runs/<stamp>        # continue a killed run
    python run.py task=eval ckpt_path=<run>/checkpoints/best.ckpt
    python run.py task=profile model/variant=B2_S4_Ti8 scale=paper dataset=kinetics400
"""

import sys

import hydra
from omegaconf import DictConfig

import mtv.runner  # noqa: F401  (registers the config schemas and ${mtv.*} resolvers used by conf/)
from mtv import ConfigError
from mtv.runner.jobs import hydra_job
from mtv.runner.overrides import check_override_keys
from mtv.runner.resume import expand_resume_argv


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return hydra_job(cfg)


if __name__ == "__main__":
    sys.argv = expand_resume_argv(sys.argv)
    try:
        check_override_keys(sys.argv[1:])
    except ConfigError as err:
        sys.exit(f"error: {err}")
    main()
