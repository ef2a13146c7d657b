"""scripts/corpus.py builds the corpus folder from git snapshots, checking every hash."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "corpus.py"


@pytest.fixture(scope="module")
def corpus():
    spec = importlib.util.spec_from_file_location("corpus_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["corpus_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _snapshot(mirrors: Path, repo: str, files: dict[str, bytes]) -> str:
    """A git work tree as fetch leaves one (mirrors/owner+name/repo); its commit."""
    tree = mirrors / repo.replace("/", "+") / "repo"
    tree.mkdir(parents=True)
    for name, data in files.items():
        (tree / name).write_bytes(data)
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "clips"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _manifest(path: Path, rows: list[tuple]) -> Path:
    lines = ["# a comment", "id\tcategory\trepo\tcommit\tpath\tsha256\tframes\tsize"]
    lines += ["\t".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_builds_checks_and_lists_what_to_fetch(tmp_path, corpus, capsys):
    mirrors = tmp_path / "mirrors"
    good, other = b"\x00\x00\x00\x18ftypmp42 sea", b"another clip"
    commit = _snapshot(mirrors, "someone/clips", {"sea waves.mp4": good, "b.mp4": other})
    manifest = _manifest(tmp_path / "c.tsv", [
        (1, "water", "someone/clips", commit, "sea waves.mp4",
         hashlib.sha256(good).hexdigest(), 10, "8x8"),
        (2, "sky", "someone/clips", commit, "b.mp4", hashlib.sha256(b"x").hexdigest(), 1,
         "8x8"),
        (3, "people", "nobody/unfetched", commit, "c.mp4", "0" * 64, 1, "8x8"),
    ])
    out = tmp_path / "out"
    status = corpus.main(["--mirrors", str(mirrors), "--out", str(out),
                          "--manifest", str(manifest)])
    err = capsys.readouterr().err
    assert status == 1  # clip 2's hash does not match
    assert (out / "water" / "1_sea_waves.mp4").read_bytes() == good
    assert not (out / "sky").exists()  # nothing written for a wrong hash
    assert "b.mp4: sha256 does not match" in err
    assert "fetch: nobody/unfetched" in err
    assert not list(out.rglob("*.partial"))


def test_a_manifest_without_a_column_is_refused(tmp_path, corpus):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\trepo\n1\ta/b\n")
    with pytest.raises(SystemExit, match="no column 'category'"):
        corpus.read_manifest(bad)


def test_the_shipped_manifest_reads(corpus):
    clips = corpus.read_manifest(corpus.MANIFEST)
    assert len(clips) >= 50
    assert len({c.file_name for c in clips}) == len(clips)
    assert all(len(c.sha256) == 64 and len(c.commit) == 40 for c in clips)


def test_a_missing_manifest_is_one_line(tmp_path, corpus):
    with pytest.raises(SystemExit, match="cannot read the manifest .*hint"):
        corpus.read_manifest(tmp_path / "absent.tsv")
