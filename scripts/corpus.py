#!/usr/bin/env python3
"""Build the generator's training corpus from fetched snapshots of public repositories.

    .venv/bin/python scripts/corpus.py [--mirrors DIR] [--out DIR] [--manifest TSV]

``scripts/corpus.tsv`` lists each clip: its repository, the commit, the path in it, its
sha256 and a category (water, sky, smoke-fire, fireworks, trees, traffic, people). Every
row was looked at before it was kept (three frames of each candidate of
../shared/corpus/CANDIDATES.md, and of the later searches): CG, stock watermarks, film
cuts, overlays and near-duplicates were dropped. No media is ever in this repository.

Snapshots are git directories under ``--mirrors`` (default /work/.mirror, where the
search tool's ``fetch`` leaves them), one per repository, named ``owner+name/repo``
(bare, or a work tree's ``.git``). Each clip is read from its commit with ``git
cat-file``, its sha256 checked, and written (atomically) to
``OUT/<category>/<id>_<file name>`` (default OUT: lexp's cache, datasets/corpus), so
``lexp train OUT ...`` finds the clips under it. Clips already there with the right hash
are kept. Rows whose snapshot is missing are listed with the repositories to fetch; a
hash that does not match is an error (exit status 1), and nothing is written for it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "scripts" / "corpus.tsv"
COLUMNS = ("id", "category", "repo", "commit", "path", "sha256")


@dataclass(frozen=True)
class Clip:
    id: str
    category: str
    repo: str  # owner/name
    commit: str
    path: str  # in the repository
    sha256: str

    @property
    def file_name(self) -> str:
        """Where it goes under the corpus folder: category/id_name."""
        return f"{self.category}/{self.id}_{Path(self.path).name.replace(' ', '_')}"


def read_manifest(path: Path) -> list[Clip]:
    """The rows of a corpus manifest (tab-separated, '#' comments, a header row)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SystemExit(f"error: cannot read the manifest {path}: {err} "
                         "(hint: --manifest takes a corpus .tsv)") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise SystemExit(f"{path}: no column {missing[0]!r} (needs {', '.join(COLUMNS)})")
    return [Clip(*(row[c].strip() for c in COLUMNS)) for row in rows]


def git_dir(mirrors: Path, repo: str) -> Path | None:
    """The snapshot's git directory for owner/name, or None when it is not fetched."""
    base = mirrors / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "objects").is_dir():
            return candidate
    return None


def read_blob(git: Path, commit: str, path: str) -> bytes | None:
    """The file at ``path`` in ``commit``, or None when the snapshot lacks it."""
    proc = subprocess.run(["git", "--git-dir", str(git), "cat-file", "blob",
                           f"{commit}:{path}"], capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


def write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.replace(target)


def build(clips: list[Clip], mirrors: Path, out: Path) -> tuple[list[Clip], list[Clip], list[Clip]]:
    """(written or already there, missing snapshots or files, hash mismatches)."""
    done, missing, wrong = [], [], []
    for clip in clips:
        target = out / clip.file_name
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == clip.sha256:
            done.append(clip)
            continue
        git = git_dir(mirrors, clip.repo)
        data = None if git is None else read_blob(git, clip.commit, clip.path)
        if data is None:
            missing.append(clip)
        elif hashlib.sha256(data).hexdigest() != clip.sha256:
            wrong.append(clip)
        else:
            write_atomic(target, data)
            done.append(clip)
    return done, missing, wrong


def default_out() -> Path:
    sys.path.insert(0, str(REPO))
    from lexp import paths

    return paths.cache_dir() / "datasets" / "corpus"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    args = parser.parse_args(argv)
    clips = read_manifest(args.manifest)
    out = args.out or default_out()
    done, missing, wrong = build(clips, args.mirrors, out)
    counts = Counter(c.category for c in done)
    print(f"{out}: {len(done)} of {len(clips)} clips ("
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
    if missing:
        repos = sorted({c.repo for c in missing})
        print(f"{len(missing)} not in the snapshots; fetch: {' '.join(repos)}", file=sys.stderr)
    for clip in wrong:
        print(f"error: {clip.repo}@{clip.commit[:12]}:{clip.path}: sha256 does not match "
              "the manifest (hint: the snapshot is another version; nothing was written)",
              file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
