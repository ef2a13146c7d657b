"""RAFT through torchvision: weights only from the lexp cache, the padding and scaling
around the model, batching, and clear errors. The real weights cannot be fetched on
these machines, so the tests use randomly initialised RAFT models saved exactly as
torchvision publishes its checkpoints (a plain state dict)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lexp import flow, torch_env, weights  # noqa: E402
from lexp.errors import InputError, UsageError  # noqa: E402

from .conftest import assert_clean_failure, run_lexp  # noqa: E402


def save_random_raft(path, variant="raft_small", seed=0) -> str:
    """A randomly initialised torchvision RAFT saved as a state dict; returns its sha256."""
    torch.manual_seed(seed)
    model = getattr(torch_env.torchvision().models.optical_flow, variant)(weights=None)
    torch.save(model.state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("raft")
    return {"small": (root / "small.pth", save_random_raft(root / "small.pth")),
            "small-2": (root / "small2.pth", save_random_raft(root / "small2.pth", seed=1)),
            "large": (root / "large.pth", save_random_raft(root / "large.pth", "raft_large"))}


@pytest.fixture
def lexp_env(tmp_path, monkeypatch):
    """An empty lexp cache and a registry whose raft-small is our test file (no pinned
    sha256, as for an organisation's own asset); set for this process and run_lexp."""
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps([{
        "name": "raft-small", "filename": "raft_small_test.pth", "url": "http://127.0.0.1:9/x",
        "sha256": None, "size": 0, "licence": "test", "used_by": "tests"}]))
    env = {"LEXP_CACHE_DIR": str(tmp_path / "cache"), "LEXP_REGISTRY": str(registry)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def frames(h, w, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return a, np.roll(a, 2, axis=1)


def test_flow_matches_torchvision_called_directly(random_weights, lexp_env):
    """Layout, normalisation ([-1, 1]) and axis order, against the bare model."""
    path, _ = random_weights["small"]
    weights.import_file("raft-small", path)
    estimator = flow.make_estimator("raft-small", device="cpu")
    a, b = frames(128, 160)
    ours = estimator.pair(a, b)
    model = torch_env.torchvision().models.optical_flow.raft_small(weights=None)
    model.load_state_dict(torch.load(path, weights_only=True))
    model.eval()

    def to_tensor(x):
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1

    with torch.inference_mode():
        theirs = model(to_tensor(a), to_tensor(b), num_flow_updates=12)[-1][0].numpy()
    assert ours.shape == (2, 128, 160) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("size", [(70, 100), (97, 203)])
def test_any_frame_size_is_padded_and_cropped_back(random_weights, lexp_env, size):
    weights.import_file("raft-small", random_weights["small"][0])
    estimator = flow.make_estimator("raft-small", device="cpu")
    a, b = frames(*size)
    result = estimator.pair(a, b)
    assert result.shape == (2, *size) and np.isfinite(result).all()
    half = flow.make_estimator("raft-small", device="cpu", scale=0.5).pair(a, b)
    assert half.shape == (2, *size) and np.isfinite(half).all()


def test_a_batch_gives_what_single_pairs_give(random_weights, lexp_env):
    weights.import_file("raft-small", random_weights["small"][0])
    estimator = flow.make_estimator("raft-small", device="cpu")
    assert estimator.batch_limit((1280, 720)) == 1  # CPU: no batching
    pairs = [frames(64, 96, seed) for seed in range(3)]
    batched = estimator.pairs(pairs)
    for (a, b), together in zip(pairs, batched, strict=True):
        np.testing.assert_allclose(estimator.pair(a, b), together, atol=1e-4)


def test_missing_weights_name_the_download_command(lexp_env, clips):
    with pytest.raises(InputError) as caught:
        flow.make_estimator("raft-small")
    assert "lexp download raft-small" in caught.value.hint
    proc = run_lexp("flow", str(clips["square"]), "--method", "raft-small", env=lexp_env)
    assert_clean_failure(proc)
    assert "lexp download raft-small" in proc.stderr


def test_damaged_and_foreign_weights_give_clear_errors(random_weights, lexp_env, tmp_path):
    cached = weights.import_file("raft-small", random_weights["small"][0])
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0x40
    cached.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged") as caught:
        flow.make_estimator("raft-small")
    assert "--force" in caught.value.hint

    weights.import_file("raft-small", random_weights["large"][0], force=True)
    with pytest.raises(InputError, match="not a raft-small checkpoint"):
        flow.make_estimator("raft-small", device="cpu").pair(*frames(64, 64))

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"certainly not a checkpoint" * 100)
    weights.import_file("raft-small", junk, force=True)
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        flow.make_estimator("raft-small", device="cpu").pair(*frames(64, 64))


def test_cli_auto_picks_raft_and_the_cache_keys_on_the_weights(random_weights, lexp_env, clips):
    args = ("flow", str(clips["square"]), "--max-frames", "3", "--json")
    proc = run_lexp(*args, env=lexp_env)
    assert proc.returncode == 0 and "dis-medium, chosen by auto" in proc.stderr

    weights.import_file("raft-small", random_weights["small"][0])
    first = run_lexp(*args, env=lexp_env)
    assert first.returncode == 0, first.stderr
    assert "raft-small on cpu, chosen by auto" in first.stderr
    summary = json.loads(first.stdout)
    assert summary["method"] == "raft-small" and summary["cache"]["misses"] == 2

    again = json.loads(run_lexp(*args, env=lexp_env).stdout)
    assert again["cache"] == {"hits": 2, "misses": 0, "damaged": 0}
    assert again["device"] is None  # every flow came from the cache: torch never ran

    weights.import_file("raft-small", random_weights["small-2"][0], force=True)
    other = json.loads(run_lexp(*args, env=lexp_env).stdout)
    assert other["cache"]["misses"] == 2  # other weights, other flows
    assert other["mean_motion_px"] != summary["mean_motion_px"]


def test_device_option_is_checked(random_weights, lexp_env, clips):
    with pytest.raises(UsageError, match="unknown device"):
        torch_env.resolve_device("tpu:7")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            torch_env.resolve_device("cuda")
        weights.import_file("raft-small", random_weights["small"][0])
        proc = run_lexp("flow", str(clips["square"]), "--method", "raft-small",
                        "--device", "cuda", "--no-cache", env=lexp_env)
        assert_clean_failure(proc, code=2)
        assert "--device cpu" in proc.stderr
    assert torch_env.resolve_device("cpu").type == "cpu"
    assert torch_env.resolve_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.gpu
def test_cuda_matches_cpu_and_batches(random_weights, lexp_env):
    weights.import_file("raft-small", random_weights["small"][0])
    cpu = flow.make_estimator("raft-small", device="cpu")
    gpu = flow.make_estimator("raft-small", device="cuda")
    assert gpu.batch_limit((1280, 720)) > 1
    pairs = [frames(120, 200, seed) for seed in range(4)]
    for on_cpu, on_gpu in zip(cpu.pairs(pairs), gpu.pairs(pairs), strict=True):
        # float16 autocast: random weights amplify rounding, so compare loosely
        assert np.abs(on_cpu - on_gpu).mean() < 0.05 * (np.abs(on_cpu).mean() + 1)
