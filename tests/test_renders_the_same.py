"""Renders the same as before the package was reorganised (cli/, media/, renderers,
flow_render split, the API): the demo clip (tests/data/golden/night_street.mp4, the
synthetic night street at 160×90) rendered by every method must match the 16-bit PNGs
that the last commit before the move (c965cda) wrote from it, to 1/65535. The flow
renders (flow, auto, flow-extrapolated, learned) were written again when tiles let each
part of a frame take its own count of instants (lexp.renderers.tiles): 83–92 dB from
c965cda's, at most 143/65535 apart. ``learned`` follows the shipped checkpoint: written
again when it was retrained on the corpus (issue 27; 39.6 dB from the one before), and
when it was fine-tuned on extrapolation with --harm-weight 3 (42.7 dB from that one), and
when that stage was made in dB instead (--loss psnr --harm-weight 1; 48.5 dB from it).
``max`` is the plain lighten stack (``--no-gap-fill``); ``max-gap-filled``, the lighten
blend over the instants between frames too (issue 45), written when it came, again
when it went tile by tile (each tile a pixel apart along its own motion), and again when
it made an instant every 4 px where motion runs one way, sweeping their light along it
(51.0 dB from the one before)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import decode_rgb, run_lexp

GOLDEN = Path(__file__).parent / "data" / "golden"
CASES = {
    "mean": ["-m", "mean"], "max": ["-m", "max", "--no-gap-fill"], "min": ["-m", "min"],
    "max-gap-filled": ["-m", "max", "--gap-fill"],
    "median": ["-m", "median"], "flow": ["-m", "flow"], "auto": ["-m", "auto"],
    "flow-extrapolated": ["-m", "flow", "--end", "5f", "--exposure", "20f"],
    "learned": ["-m", "learned", "--end", "5f", "--exposure", "20f"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_method_renders_as_before(name, tmp_path):
    out = tmp_path / f"{name}.png"
    proc = run_lexp("render", str(GOLDEN / "night_street.mp4"), "-o", str(out),
                    "--bit-depth", "16", *CASES[name],
                    env={"LEXP_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    now, before = decode_rgb(out).astype(np.int64), decode_rgb(GOLDEN / f"{name}.png")
    assert np.abs(now - before.astype(np.int64)).max() <= 1
