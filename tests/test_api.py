"""The Python API (lexp.render, lexp.optical_flow, lexp.load_generator, lexp.Image), called
directly as a notebook or a service would, and checked against the CLI it shares its
path with."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lexp
from lexp import stills, synthetic
from lexp.errors import InputError, UsageError
from tests.conftest import decode_rgb, run_lexp


@pytest.fixture(scope="module")
def square_frames():
    return list(synthetic.moving_square(96, 64, frames=12))


def test_import_lexp_is_light():
    """`lexp --help` and TAB completion stay fast: the package imports nothing heavy."""
    heavy = "print(','.join(m for m in ('numpy', 'cv2', 'torch') if m in sys.modules))"
    light = subprocess.run([sys.executable, "-c", f"import sys, lexp; {heavy}"],
                           capture_output=True, text=True, check=True)
    assert light.stdout.strip() == ""
    # lexp.render and lexp.Image resolve lazily; touching them brings numpy, never torch.
    touched = subprocess.run([sys.executable, "-c", f"import sys, lexp; lexp.render; "
                              f"lexp.Image; {heavy}"], capture_output=True, text=True,
                             check=True)
    assert "numpy" in touched.stdout and "torch" not in touched.stdout


def test_render_a_file_is_what_the_cli_writes(clips, tmp_path, monkeypatch):
    """One path for both: the CLI's 16-bit PNG and the API's image agree to the bit, and
    a file the API saves is the CLI's file, byte for byte."""
    # The files carry the flow cache's hits and misses: both runs find the flows cached,
    # in a cache of their own (a shared one may have evicted them in between)
    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    lexp.render(str(clips["street"]), method="flow")  # the flows, into that cache
    cli_png = tmp_path / "cli.png"
    assert run_lexp("render", str(clips["street"]), "-o", str(cli_png), "--bit-depth", "16",
                    "-m", "flow").returncode == 0
    image = lexp.render(str(clips["street"]), method="flow")
    assert isinstance(image, lexp.Image)
    assert image.method == "flow" and image.frames_used == 40
    assert image.linear.dtype == np.float32 and image.linear.shape == (90, 160, 3)
    assert np.array_equal(image.to_srgb(16), decode_rgb(cli_png))
    saved = image.save(tmp_path / "api.png", bit_depth=16)
    assert saved.read_bytes() == cli_png.read_bytes()
    assert stills.read_settings(saved)["config"]["method"] == "flow"


def test_render_frames_in_memory_or_streamed(square_frames):
    listed = lexp.render(square_frames, method="flow", fps=10)
    streamed = lexp.render(iter(square_frames), method="flow", fps=10)
    stacked = lexp.render(np.stack(square_frames), method="flow", fps=10)
    assert listed.details.flow.estimator == "dis-medium"
    assert np.array_equal(listed.linear, streamed.linear)
    assert np.array_equal(listed.linear, stacked.linear)
    mean = lexp.render(square_frames, method="mean")
    from lexp import colour

    truth = np.mean([colour.decode_lut("srgb")[f] for f in square_frames], axis=0)
    assert np.abs(mean.linear - truth).max() < 1e-5


def test_render_takes_the_clis_times(square_frames):
    image = lexp.render(square_frames, method="flow", fps=10, end="5f", exposure=2.0)
    assert image.frames_used == 5
    assert image.details.flow.extrapolated == 15  # 2 s at 10 fps, past 5 frames
    assert image.settings["config"]["exposure"] == "2s"


@pytest.mark.parametrize("source,error,says", [
    ("missing.mp4", InputError, "no such file"),
    ([], UsageError, "no frames"),
    ([np.zeros((8, 8), np.uint8)], UsageError, r"uint8 \(or uint16\) H×W×3"),
    ([np.zeros((8, 8, 3), np.float32)], UsageError, r"uint8 \(or uint16\) H×W×3"),
    (iter([]), InputError, "none"),
    (42, UsageError, "cannot render a int"),
])
def test_bad_sources_raise_lexp_errors(source, error, says):
    with pytest.raises(error, match=says) as caught:
        lexp.render(source)
    assert caught.value.hint


def test_frames_of_two_sizes_in_a_stream_are_an_error(square_frames):
    frames = square_frames[:3] + [np.zeros((10, 10, 3), np.uint8)]
    with pytest.raises(InputError, match="frame 3 is 10x10"):
        lexp.render(iter(frames), method="mean")


def test_bad_options_are_usage_errors(square_frames):
    with pytest.raises(UsageError, match="unknown method"):
        lexp.render(square_frames, method="blend")
    with pytest.raises(UsageError, match="not a time"):
        lexp.render(square_frames, exposure="soon")
    with pytest.raises(UsageError, match="unknown device"):
        lexp.load_generator(device="gpu9")


def test_optical_flow_of_known_motion():
    frames = list(synthetic.moving_square(96, 64, frames=4))
    flows = lexp.optical_flow(frames, method="dis")
    assert len(flows) == 3 and flows[0].shape == (2, 64, 96) and flows[0].dtype == np.float32
    inside = flows[0][:, 8:16, 8:16].reshape(2, -1)  # the square moves (3, 1) px a frame
    assert np.allclose(np.median(inside, axis=1), (3, 1), atol=0.5)  # DIS, on 16 px
    both = lexp.optical_flow(frames, method="dis", backward=True)
    assert len(both) == 6
    assert np.allclose(both[0], flows[0])


def test_load_generator_gives_the_shipped_network():
    network, config = lexp.load_generator("lexp")
    assert config.arch == "lexp" and not network.training


class OutOfMemoryError(RuntimeError):
    """What torch raises when CUDA's allocator is out of memory (by name, as lexp tells it)."""


@pytest.mark.parametrize("raised, said", [
    (MemoryError(), "out of memory rendering frames"),
    (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     "the GPU ran out of memory rendering frames"),
    (RuntimeError("MPS backend out of memory (MPS allocated: 5 GB)"),
     "the GPU ran out of memory rendering frames"),
])
def test_running_out_of_memory_is_one_line_with_a_hint(square_frames, monkeypatch, raised,
                                                       said):
    from lexp import renderers
    from lexp.errors import LexpError

    def full(*args, **kwargs):
        raise raised

    monkeypatch.setattr(renderers, "render_clip", full)
    with pytest.raises(LexpError, match=said) as caught:
        lexp.render(square_frames, method="flow", fps=10)
    assert "--end" in caught.value.hint and caught.value.__cause__ is raised
    monkeypatch.setattr(renderers, "render_clip", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a bug stays a bug
        lexp.render(square_frames, method="flow", fps=10)
