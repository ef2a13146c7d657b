"""``lexp download``: weights and datasets into the cache."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from lexp import stdout
from lexp.cli.app import RunState, app
from lexp.cli.options import CacheDir
from lexp.errors import UsageError

DOWNLOAD_EPILOG = """\
Examples:

  lexp download --list                              # what exists, what is in the cache

  lexp download raft-small raft-large               # fetch, verify, keep in the cache

  lexp download raft-small --from ~/raft_small_C_T_V2-01064c6d.pth   # no network here

  lexp download vgg16 --mirror https://files.example.org/lexp        # your own server

  lexp download raft-large --force --cache-dir /shared/lexp-cache    # fetch again, elsewhere

Downloads resume after an interruption, and are verified (sha256) before they land.
LEXP_OFFLINE=1 never touches the network; LEXP_MIRROR and LEXP_CACHE_DIR set the defaults.
"""


@app.command(epilog=DOWNLOAD_EPILOG)
def download(
    names: list[str] = typer.Argument(None, metavar="NAME...", help="Assets to fetch."),
    list_assets: bool = typer.Option(False, "--list", help="List the assets and exit."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if cached."),
    from_file: Path | None = typer.Option(
        None, "--from", metavar="FILE",
        help="Import a copy made elsewhere (verified first) instead of downloading."),
    cache: CacheDir = None,
    mirror: str | None = typer.Option(
        None, "--mirror", envvar="LEXP_MIRROR", metavar="URL",
        help="Fetch MIRROR/FILENAME instead of the published URL; checksums still come "
             "from lexp's registry."),
) -> None:
    """Fetch model weights and datasets into the lexp cache, verified and resumable."""
    from lexp import weights
    from lexp.cli.show import Reporter

    reporter = Reporter(quiet=RunState.quiet)
    if list_assets:
        _print_assets(reporter, cache)
        return
    if not names:
        raise UsageError("name an asset to download", hint="lexp download --list shows them")
    if from_file is not None:
        if len(names) != 1:
            raise UsageError("--from imports one asset", hint="lexp download NAME --from FILE")
        where = weights.import_file(names[0], from_file, cache=cache, force=force)
        reporter.info(f"{names[0]}: imported {from_file} ({weights.check_made(names[0])}) "
                      f"→ {where}")
        return
    assets = [weights.get(n) for n in names]  # all names checked before any download
    for asset in assets:
        with reporter.progress_bytes(asset.name, asset.size) as on_progress:
            where, fetched = weights.ensure(asset.name, cache=cache, mirror=mirror, force=force,
                                            on_progress=on_progress,
                                            on_retry=partial(_say_retry, reporter, asset.name))
        verb = ("downloaded and verified" if asset.sha256 else
                f"downloaded ({weights.check_made(asset.name)})") if fetched else \
            "already in the cache"
        reporter.info(f"{asset.name}: {verb} → {where}")


def _say_retry(reporter, name: str, why: str) -> None:
    reporter.warn(f"{name}: {why}")


def _print_assets(reporter, cache) -> None:
    from lexp import weights
    from lexp.cli import show

    # The listing is the result the user asked for: it goes to stdout. A Rich table on a
    # terminal; for a pipe or a file, plain aligned columns (Rich lays out ~1 ms a row:
    # a registry of thousands of assets took seconds).
    text = show.rich_text(lambda console: show.assets_table(console, cache)) \
        if stdout.is_terminal() else show.assets_text(cache)
    stdout.write_text(text, "the list")
    reporter.info(f"cache: {weights.location(weights.BUILTIN[0], cache).parent.parent}")
