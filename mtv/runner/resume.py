"""`resume=<dir>`: continue a run (or a whole sweep) in its own directory with its own overrides.

Before Hydra composes anything, run.py turns

    python run.py resume=outputs/train/runs/<stamp> [more overrides]
    python run.py -m resume=outputs/train/multiruns/<stamp> [more overrides]

into the original command line (from the run's `.hydra/overrides.yaml`, or the sweep's `multirun.yaml`)
plus `resume=true hydra.run.dir=<dir>` (or `hydra.sweep.dir=<dir>`). Overrides given now win over the
saved ones (e.g. a larger trainer.max_epochs). With resume=true each job continues from its
checkpoints/last.ckpt (model, optimizer, scheduler, data position; the random state is a function of
the step), keeps its W&B run id, and skips itself if its results.json says completed.

A run directory is data, not code: only overrides of keys that conf/ declares are replayed (`replayable`): a
choice of a config group of conf/ naming an existing option file, or a value for a key that the config
composed from those choices declares (`+`/`++` included); never anything under `hydra` (launchers,
callbacks, run directories), never an instantiation key such as `_target_` (it would create any class).
What is left out is printed; give it again on the command line if you meant it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import OmegaConfBaseException

FLAGS = ("true", "false", "null", "none")
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
INSTANTIATE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _saved_overrides(run_dir: Path, multirun: bool) -> list[str]:
    if multirun:
        saved = run_dir / "multirun.yaml"
        if not saved.exists():
            raise SystemExit(f"error: resume={run_dir}: no multirun.yaml there (is it a sweep directory?)")
        return list(yaml.safe_load(saved.read_text())["hydra"]["overrides"]["task"])
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.exists():
        raise SystemExit(f"error: resume={run_dir}: no .hydra/overrides.yaml there (is it a run directory?)")
    return list(yaml.safe_load(saved.read_text()) or [])



def _options(override: Override) -> list[str]:
    if override.value_type is None:  # ~group (a deletion)
        return []
    return [str(v) for v in override.sweep_string_iterator()] if override.is_sweep_override() else [
        str(override.value())]


def _group_choice_problem(override: Override) -> str | None:
    group = override.key_or_group
    missing = [o for o in _options(override) if ".." in Path(o).parts or not (CONF_DIR / group / f"{o}.yaml").is_file()]
    return f"conf/{group} has no option {missing[0]!r}" if missing else None


def _declared(cfg: DictConfig, key: str) -> bool:
    node: object = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig) and part in node.keys():
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))
        else:
            return False
    return True


def _composed(group_overrides: list[Override]) -> list[DictConfig]:
    """The config for the first option of every group, and once per other option of a swept group."""
    first = [f"{o.get_key_element()}={_options(o)[0]}" for o in group_overrides if _options(o)]
    variants = [first]
    for i, o in enumerate(group_overrides):
        for option in _options(o)[1:]:
            variants.append([*first[:i], f"{o.get_key_element()}={option}", *first[i + 1:]])
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return [compose(config_name="config", overrides=v) for v in variants]
    except (HydraException, OmegaConfBaseException) as err:
        raise SystemExit(f"error: resume: the saved config choices {first} do not compose: {err}") from None


def replayable(overrides: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the overrides that may be replayed, in order; [(refused override, why)])."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    refused: dict[str, str] = {}
    groups: list[Override] = []  # valid group choices
    for o in parsed:
        key = o.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")) or o.package:
            refused[o.input_line] = "Hydra's own settings and packages are not replayed"
        elif any(word in o.input_line for word in INSTANTIATE_KEYS):
            refused[o.input_line] = "it names a class to instantiate"
        elif (CONF_DIR / key).is_dir():
            problem = _group_choice_problem(o)
            if problem:
                refused[o.input_line] = problem
            else:
                groups.append(o)
    configs = _composed(groups)
    for o in parsed:
        if o.input_line in refused or any(o is g for g in groups):
            continue
        if not any(_declared(cfg, o.key_or_group) for cfg in configs):
            refused[o.input_line] = f"conf/ declares no key {o.key_or_group}"
    kept = [line for line, o in zip(overrides, parsed) if o.input_line not in refused]
    return kept, [(line, refused[line]) for line in overrides if line in refused]


def expand_resume_argv(argv: list[str]) -> list[str]:
    """argv with `resume=<dir>` replaced by the saved overrides, resume=true and the directory."""
    target = next((a for a in argv[1:] if a.startswith("resume=") and a[7:].lower() not in FLAGS), None)
    if target is None:
        return argv
    run_dir = Path(target[7:])
    multirun = "-m" in argv or "--multirun" in argv
    flags = [a for a in argv[1:] if a.startswith("-")]  # Hydra's options (-m, ...) before any override
    given = [a for a in argv[1:] if a != target and not a.startswith("-")]
    given_keys = {_key(a) for a in given}
    saved = [o for o in _saved_overrides(run_dir, multirun) if _key(o) not in given_keys and _key(o) != "resume"]
    saved, refused = replayable(saved)
    for override, reason in refused:
        print(f"resume={run_dir}: not replaying {override!r} ({reason}); give it on the command line if you "
              "meant it", file=sys.stderr)
    where = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    return [argv[0], *flags, *saved, *given, "resume=true", f"{where}={run_dir}"]
