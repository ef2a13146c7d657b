import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lexp.flow import cache as flow_cache
from lexp.flow.cache import FlowCache
from lexp.media import ClipSource

EST = {"estimator": "dis", "scale": 1.0, "preset": "medium"}


def a_flow(seed=0, h=24, w=32):
    return (np.random.default_rng(seed).random((2, h, w)) * 40 - 20).astype(np.float32)


def test_round_trip_in_float16(tmp_path):
    cache = FlowCache(tmp_path)
    key = cache.key("clip", 0, 1, EST, (32, 24))
    assert cache.get(key) is None and cache.misses == 1
    f = a_flow()
    cache.put(key, f, {"clip": "clip.mp4"})
    got = cache.get(key)
    assert got.dtype == np.float32 and got.shape == f.shape
    assert np.abs(got - f).max() < 0.01  # float16 at |flow| <= 20 px
    assert cache.hits == 1


def test_a_cache_that_cannot_be_written_keeps_nothing_and_says_why(tmp_path):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache should be")
    cache = FlowCache(not_a_folder)
    key = cache.key("clip", 0, 1, EST, (32, 24))
    cache.put(key, a_flow())  # no exception: a cache only saves time
    assert cache.write_problem is not None and "cannot be written" in cache.write_problem
    assert cache.get(key) is None and cache.prune() == 0 and cache.entries() == []


def test_motion_below_float16s_normal_range_is_stored_as_zero():
    """float16's subnormals (under 2^-14 px) become 0 — numpy converts them slowly, and
    DIS flows of still regions are full of them; every other value rounds as astype does."""
    f = a_flow()
    f[0, :4] = np.float32(3e-5)  # subnormal in float16
    f[1, :4] = np.float32(-1e-7)
    f[0, 4:8] = np.float32(2.0 ** -14)  # the smallest normal one stays
    half = flow_cache.to_half(f)
    assert half.dtype == np.float16
    assert (half[:, :4] == 0).all()
    np.testing.assert_array_equal(half[:, 4:], f[:, 4:].astype(np.float16))
    assert flow_cache.to_half(half) is half


def test_keys_change_with_everything_that_matters():
    base = FlowCache.key("clip", 0, 1, EST, (32, 24))
    variants = [FlowCache.key("other", 0, 1, EST, (32, 24)),
                FlowCache.key("clip", 1, 0, EST, (32, 24)),  # backward flow
                FlowCache.key("clip", 0, 2, EST, (32, 24)),
                FlowCache.key("clip", 0, 1, {**EST, "preset": "fast"}, (32, 24)),
                FlowCache.key("clip", 0, 1, EST, (64, 48))]
    assert len({base, *variants}) == 6
    assert base == FlowCache.key("clip", 0, 1, dict(reversed(EST.items())), (32, 24))


@pytest.mark.parametrize("damage", ["flip", "truncate", "meta"])
def test_a_damaged_entry_is_recomputed_not_used(tmp_path, damage):
    cache = FlowCache(tmp_path)
    key = cache.key("clip", 0, 1, EST, (32, 24))
    cache.put(key, a_flow())
    entry = cache._entry(key)
    data = (entry / "flow.npy").read_bytes()
    if damage == "flip":
        (entry / "flow.npy").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "truncate":
        (entry / "flow.npy").write_bytes(data[: len(data) // 2])
    else:
        (entry / "meta.json").write_text("{not json")
    assert cache.get(key) is None and not entry.exists()
    cache.put(key, a_flow(1))  # recomputed and stored again
    assert np.abs(cache.get(key) - a_flow(1)).max() < 0.01


def test_a_record_is_hashed_once_and_again_when_its_data_changes(tmp_path, monkeypatch):
    cache = FlowCache(tmp_path)
    key = cache.key("clip", 0, 1, EST, (32, 24))
    cache.put(key, a_flow())  # checked as written
    hashed = []
    real = flow_cache.hashlib.sha256
    monkeypatch.setattr(flow_cache.hashlib, "sha256",
                        lambda data=b"": hashed.append(len(data)) or real(data))
    first = cache.get(key)
    assert cache.get(key) is not None and hashed == []  # the memo is trusted
    (cache._entry(key) / "verified").unlink()  # written by a lexp without the memo
    np.testing.assert_array_equal(cache.get(key), first)
    assert cache.get(key) is not None and len(hashed) == 1  # checked once, remembered
    # damaged after it was checked: the data file's mtime moves, so it is checked again
    data_path = cache._entry(key) / "flow.npy"
    data = data_path.read_bytes()
    data_path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    os.utime(data_path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert cache.motion(key) is None  # not trusted: only get() may say so
    assert cache.get(key) is None and cache.damaged == 1


def test_the_motion_kept_beside_a_flow_is_read_without_the_flow(tmp_path, monkeypatch):
    from lexp.flow.run import motion_of

    cache = FlowCache(tmp_path)
    key = cache.key("clip", 0, 1, EST, (32, 24))
    flow = a_flow()
    cache.put(key, flow, {"motion": motion_of(flow)})
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("the flow was read"))
    assert cache.motion(key) == motion_of(flow) and cache.hits == 1
    bare = cache.key("clip", 1, 2, EST, (32, 24))
    cache.put(bare, flow)  # no motion kept: get() it is
    assert cache.motion(bare) is None and cache.motion("0" * 64) is None
    assert cache.hits == 1 and cache.misses == 0


def test_float16_to_float32_is_numpys_conversion():
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    finite = every[np.isfinite(every)].reshape(2, 1, -1)
    np.testing.assert_array_equal(flow_cache.from_half(finite), finite.astype(np.float32))


def test_two_writers_of_one_entry_both_succeed(tmp_path):
    key = FlowCache.key("clip", 0, 1, EST, (32, 24))
    errors = []

    def write():
        try:
            FlowCache(tmp_path).put(key, a_flow())
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            errors.append(err)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert FlowCache(tmp_path).get(key) is not None
    leftovers = [p for p in (tmp_path / "flow" / key[:2]).iterdir() if p.name != key]
    assert leftovers == []  # no staging folders left behind


def test_prune_drops_the_least_recently_used(tmp_path):
    cache = FlowCache(tmp_path)
    keys = [cache.key("clip", i, i + 1, EST, (32, 24)) for i in range(3)]
    for i, key in enumerate(keys):
        cache.put(key, a_flow(i))
        os.utime(cache._entry(key) / "meta.json", (1000 + i, 1000 + i))
    assert cache.get(keys[0]) is not None  # used now: the newest
    total = sum(size for _, size, _ in cache.entries())
    freed = cache.prune(max_bytes=total - 1)  # one entry over: exactly one must go
    assert 0 < freed < total / 2
    assert cache.get(keys[1]) is None  # the least recently used went
    assert cache.get(keys[0]) is not None and cache.get(keys[2]) is not None


def test_clip_id_follows_content_not_path(tmp_path, monkeypatch):
    a = tmp_path / "a.mp4"
    a.write_bytes(b"video bytes" * 1000)
    b = tmp_path / "copy.mp4"
    shutil.copy(a, b)
    cache = FlowCache(tmp_path / "cache")
    ids = [cache.clip_id(ClipSource(str(p), "video", (p,))) for p in (a, b)]
    assert ids[0] == ids[1]
    calls = []
    real = flow_cache.sha256_of
    monkeypatch.setattr(flow_cache, "sha256_of", lambda p: calls.append(p) or real(p))
    assert cache.clip_id(ClipSource(str(a), "video", (a,))) == ids[0]
    assert calls == []  # remembered, not re-hashed
    time.sleep(0.01)
    a.write_bytes(b"edited" * 1000)
    assert cache.clip_id(ClipSource(str(a), "video", (a,))) != ids[0]
    frames = ClipSource("f", "frames", (a, b))
    assert cache.clip_id(frames) not in ids


def test_the_cache_lives_in_lexp_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path))
    assert FlowCache().root == Path(tmp_path) / "flow"


def test_the_cache_limit_suits_a_laptop_and_is_configurable(tmp_path, monkeypatch):
    """After a handful of renders the cache was 3.4 GB (its limit was 20 GiB)."""
    from lexp.errors import UsageError
    from lexp.flow.cache import FlowCache

    monkeypatch.delenv("LEXP_FLOW_CACHE_GB", raising=False)
    assert FlowCache(tmp_path).max_bytes == 2 << 30
    monkeypatch.setenv("LEXP_FLOW_CACHE_GB", "0.5")
    assert FlowCache(tmp_path).max_bytes == 1 << 29
    monkeypatch.setenv("LEXP_FLOW_CACHE_GB", "lots")
    with pytest.raises(UsageError, match="LEXP_FLOW_CACHE_GB"):
        FlowCache(tmp_path)
