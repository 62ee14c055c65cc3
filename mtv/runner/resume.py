"""`resume=<dir>`: continue a run (or a whole sweep) in its own directory with its own overrides.

Before Hydra composes anything, run.py turns

    python run.py resume=outputs/train/runs/<stamp> [more overrides]
    python run.py -m resume=outputs/train/multiruns/<stamp> [more overrides]

into the original command line (from the run's `.hydra/overrides.yaml`, or the sweep's `multirun.yaml`)
plus `resume=true hydra.run.dir=<dir>` (or `hydra.sweep.dir=<dir>`). Overrides given now win over the
saved ones (e.g. a larger trainer.max_epochs). With resume=true each job continues from its
checkpoints/last.ckpt (model, optimizer, scheduler, data position; the random state is a function of
the step), keeps its W&B run id, and skips itself if its results.json says completed.
"""

from __future__ import annotations

from pathlib import Path

import yaml

FLAGS = ("true", "false", "null", "none")


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
    where = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    return [argv[0], *flags, *saved, *given, "resume=true", f"{where}={run_dir}"]
