import pytest

from lexp.config import OutputConfig, RenderConfig, TimeSpec, Window
from lexp.errors import UsageError


@pytest.mark.parametrize("text,value,unit", [
    ("2.5", 2.5, "s"), ("2.5s", 2.5, "s"), ("48f", 48, "f"), (".5", 0.5, "s"), ("0", 0, "s"),
])
def test_timespec_parse(text, value, unit):
    spec = TimeSpec.parse(text, "--start")
    assert (spec.value, spec.unit) == (value, unit)


@pytest.mark.parametrize("text", ["", "abc", "-1", "2.5f", "1m", "3 s s"])
def test_timespec_rejects(text):
    with pytest.raises(UsageError):
        TimeSpec.parse(text, "--start")


def test_seconds_map_to_the_first_frame_at_or_after():
    assert TimeSpec(2.0, "s").to_frame(30, "--start") == 60
    assert TimeSpec(2.01, "s").to_frame(30, "--start") == 61
    assert TimeSpec(1.0, "s").to_frame(29.97, "--start") == 30
    assert TimeSpec(12, "f").to_frame(None, "--start") == 12


def test_seconds_need_a_frame_rate():
    with pytest.raises(UsageError, match="no frame rate"):
        TimeSpec(1.0, "s").to_frame(None, "--start")


def test_window_range_and_validation():
    w = Window(start=TimeSpec(1, "s"), end=TimeSpec(90, "f"))
    assert w.frame_range(30) == (30, 90)
    with pytest.raises(UsageError, match="not after"):
        Window(start=TimeSpec(5, "s"), end=TimeSpec(2, "s")).frame_range(30)
    with pytest.raises(UsageError):
        Window(stride=0)


def test_render_config_aliases_and_checks():
    assert RenderConfig(method="lighten").method == "max"
    assert RenderConfig(method="darken").method == "min"
    with pytest.raises(UsageError, match="unknown method"):
        RenderConfig(method="blend")
    with pytest.raises(UsageError):
        RenderConfig(fps=0)
    with pytest.raises(UsageError):
        OutputConfig(bit_depth=12)
    d = RenderConfig(window=Window(start=TimeSpec(3, "f"))).to_dict()
    assert d["window"]["start"] == "3f" and d["method"] == "mean"


@pytest.mark.parametrize("settings", [dict(reject=5), dict(flat=[3]), dict(dark=7),
                                      dict(reject="planes"), dict(hot_pixels="yes"),
                                      dict(white_balance=3.5), dict(white_balance="900K")])
def test_calibration_and_white_balance_settings_are_checked(settings):
    """Through the API as through the CLI: a usage error naming the setting, never a
    TypeError from deep inside."""
    with pytest.raises(UsageError):
        RenderConfig(**settings)


def test_calibration_settings_take_text_lists_or_nothing():
    config = RenderConfig(dark="darks/", flat=None, reject="bright, streaks",
                          white_balance=3200)
    assert config.dark == ("darks/",) and config.flat == () and \
        config.reject == ("bright", "streaks") and config.white_balance == "3200"
