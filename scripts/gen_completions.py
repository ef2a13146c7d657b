#!/usr/bin/env python3
"""Regenerate completions/ (bash, zsh, fish) from the CLI; `--check` fails if they are stale.

The scripts are Typer's: on TAB they ask `lexp` itself (with _LEXP_COMPLETE set) for the
candidates, so they follow every option without regeneration, and answer in ~0.1 s
because `lexp` imports nothing heavy to answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = {"bash": "lexp.bash", "zsh": "_lexp", "fish": "lexp.fish"}


def scripts() -> dict[str, str]:
    from typer._completion_shared import get_completion_script

    return {name: get_completion_script(prog_name="lexp", complete_var="_LEXP_COMPLETE",
                                        shell=shell).strip() + "\n"
            for shell, name in FILES.items()}


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in scripts().items():
        path = REPO / "completions" / name
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(path)
    if stale:
        print("stale completion scripts: " + ", ".join(stale), file=sys.stderr)
        print("run: .venv/bin/python scripts/gen_completions.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
