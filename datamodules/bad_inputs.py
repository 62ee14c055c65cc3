"""Bad input, nothing lost: missing files are reported at start-up, undecodable videos at run time.

Both lists go to the run directory (`cfg.paths.output_dir`): `missing_videos_<split>.txt` and
`bad_videos.txt` (one `split<TAB>path<TAB>error` line per video, appended by every worker and rank;
single short `write` calls on an O_APPEND file do not interleave).
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

from .formats import VideoRecord

log = logging.getLogger(__name__)

MISSING_POLICIES = ("error", "skip")
DECODE_ERROR_POLICIES = ("skip", "error")
BAD_VIDEOS_FILE = "bad_videos.txt"


def _existing_files(paths: list[str]) -> set[str]:
    """One directory listing per folder instead of one stat per file (Kinetics: ~250k files)."""
    by_dir: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        by_dir[os.path.dirname(path)].append(path)
    existing: set[str] = set()
    for folder, members in by_dir.items():
        try:
            names = {entry.name for entry in os.scandir(folder or ".") if entry.is_file()}
        except (FileNotFoundError, NotADirectoryError):
            continue
        existing.update(p for p in members if os.path.basename(p) in names)
    return existing


def check_missing(records: list[VideoRecord], split: str, policy: str, output_dir: str | None,
                  keep_missing: bool = False) -> list[VideoRecord]:
    """Report records whose file does not exist; apply `data.missing`.

    `error` raises with the count, the first few paths and the file holding the full list; `skip`
    warns and drops them, except with `keep_missing` (evaluation splits): then they stay in and are
    counted as unreadable at test time instead of silently shrinking the test set.
    """
    if policy not in MISSING_POLICIES:
        raise ValueError(f"data.missing={policy!r} must be one of {MISSING_POLICIES}")
    existing = _existing_files(sorted({r.path for r in records}))
    missing = sorted({r.path for r in records if r.path not in existing})
    if not missing:
        return records
    listing = None
    if output_dir:
        listing = Path(output_dir, f"missing_videos_{split}.txt")
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(missing) + "\n")
    message = (f"{len(missing)} of {len(records)} {split} videos are missing, e.g. {missing[:3]}"
               f"{f'; full list in {listing}' if listing else ''}")
    if policy == "error":
        raise FileNotFoundError(f"{message}. Fix dataset.root / the annotation paths, or set "
                                f"data.missing=skip to go on without them.")
    log.warning("%s; data.missing=skip: %s", message,
                "they count as unreadable" if keep_missing else "they are left out")
    if keep_missing:
        return records
    missing_set = set(missing)
    return [r for r in records if r.path not in missing_set]


class BadVideoLog:
    """Appends undecodable videos with their error to `<output_dir>/bad_videos.txt`, once per process."""

    def __init__(self, output_dir: str | None) -> None:
        self.path = Path(output_dir, BAD_VIDEOS_FILE) if output_dir else None
        self._seen: set[tuple[str, str]] = set()

    def record(self, split: str, video_path: str, error: BaseException) -> None:
        log.warning("unreadable %s video %s: %s", split, video_path, error)
        if self.path is None or (split, video_path) in self._seen:
            return
        self._seen.add((split, video_path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        message = " ".join(str(error).split())  # one line
        with open(self.path, "a") as f:
            f.write(f"{split}\t{video_path}\t{message}\n")

    def errors(self, split: str) -> dict[str, str]:
        """path -> error message of the videos recorded so far in `split` (by all workers and ranks)."""
        if self.path is None or not self.path.is_file():
            return {}
        lines = (line.split("\t", 2) for line in self.path.read_text().splitlines())
        return {parts[1]: parts[2] for parts in lines if len(parts) == 3 and parts[0] == split}

    def read(self, split: str | None = None) -> list[str]:
        """Distinct video paths recorded so far (by all workers and ranks), optionally for one split."""
        if self.path is None or not self.path.is_file():
            return []
        paths = []
        for line in self.path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and (split is None or parts[0] == split):
                paths.append(parts[1])
        return sorted(set(paths))
