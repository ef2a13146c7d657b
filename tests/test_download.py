"""lexp download against a real HTTP server on 127.0.0.1 that misbehaves on request."""

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from lexp import download, weights
from lexp.errors import InputError, LexpError
from tests.conftest import assert_clean_failure, run_lexp

PAYLOAD = os.urandom(300_000) + b"lexp"
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /MODE/NAME, where MODE says how to misbehave."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.hits: dict[str, int] = {}
        self.files = {"test.bin": PAYLOAD}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append((self.path, self.headers.get("Range")))
                mode, _, name = self.path.lstrip("/").partition("/")
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                data = owner.files.get(name)
                if mode == "drive" and "confirm=t" not in self.path:  # the warning page
                    page = (f'<form action="{owner.url}/drive/{name}"><input type="hidden" '
                            f'name="id" value="X"><input type="hidden" name="confirm" '
                            f'value="t"></form>').encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                name = name.split("?")[0]
                data = owner.files.get(name)
                if mode == "missing" or data is None:
                    self.send_error(404)
                    return
                if mode == "flaky" and owner.hits[self.path] == 1:
                    self.send_error(503)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and mode != "norange":
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if mode == "cut" and owner.hits[self.path] == 1:
                    self.wfile.write(body[: len(body) // 2])  # then hang up early
                    return
                if mode == "alwayscut":
                    self.wfile.write(body[: len(body) // 3])
                    return
                if mode == "stall":
                    self.wfile.write(body[:1000])
                    self.wfile.flush()
                    time.sleep(1.5)  # longer than the client's timeout
                    return
                if mode == "slow":
                    for i in range(0, len(body), 30_000):
                        self.wfile.write(body[i:i + 30_000])
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def fetch(url, dest, **kw):
    kw.setdefault("timeout", 0.5)
    kw.setdefault("backoff", 0.01)
    return download.fetch(url, dest, **kw)


def test_a_plain_download_is_verified_and_atomic(server, tmp_path):
    dest = tmp_path / "test.bin"
    assert fetch(f"{server.url}/files/test.bin", dest, sha256=DIGEST) == DIGEST
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("test.bin.part").exists()


def test_a_connection_cut_halfway_resumes_with_range(server, tmp_path):
    dest = tmp_path / "test.bin"
    assert fetch(f"{server.url}/cut/test.bin", dest, sha256=DIGEST[:8]) == DIGEST
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={len(PAYLOAD) // 2}-"  # resumed, not restarted


def test_a_part_left_by_an_earlier_run_is_resumed(server, tmp_path):
    dest = tmp_path / "test.bin"
    dest.with_name("test.bin.part").write_bytes(PAYLOAD[:123_456])
    assert fetch(f"{server.url}/files/test.bin", dest, sha256=DIGEST) == DIGEST
    assert server.requests == [("/files/test.bin", "bytes=123456-")]


def test_a_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    dest = tmp_path / "test.bin"
    dest.with_name("test.bin.part").write_bytes(b"x" * 5000)  # not even the right bytes
    assert fetch(f"{server.url}/norange/test.bin", dest, sha256=DIGEST) == DIGEST


def test_a_wrong_checksum_is_refused_and_nothing_lands(server, tmp_path):
    dest = tmp_path / "test.bin"
    with pytest.raises(download.ChecksumError, match="does not match"):
        fetch(f"{server.url}/files/test.bin", dest, sha256="deadbeef")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_404_is_final_and_clear(server, tmp_path):
    with pytest.raises(download.DownloadError, match="HTTP 404"):
        fetch(f"{server.url}/missing/test.bin", tmp_path / "x.bin")
    assert len(server.requests) == 1  # not retried


def test_transient_errors_are_retried(server, tmp_path):
    dest = tmp_path / "test.bin"
    assert fetch(f"{server.url}/flaky/test.bin", dest, sha256=DIGEST) == DIGEST
    assert len(server.requests) == 2


def test_a_stalled_server_times_out_with_a_clear_error(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(download.DownloadError, match="stalled"):
        fetch(f"{server.url}/stall/test.bin", tmp_path / "x.bin", timeout=0.3, retries=1)
    assert time.monotonic() - started < 5


def test_a_server_that_always_closes_early_fails_clearly(server, tmp_path):
    with pytest.raises(download.DownloadError, match="closed the connection"):
        fetch(f"{server.url}/alwayscut/test.bin", tmp_path / "x.bin", retries=2)


def test_nothing_listening_is_a_clear_error(tmp_path):
    with pytest.raises(download.DownloadError, match="cannot connect"):
        fetch("http://127.0.0.1:9/x.bin", tmp_path / "x.bin", retries=1,
              offline_hint="use --from")


# --------------------------------------------------------------------- archives


def make_zip(path, entries, symlink=None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, symlink[1])
    return path


def make_tar(path, entries, symlink=None):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tf.addfile(info)
    return path


@pytest.mark.parametrize("maker", [make_zip, make_tar])
def test_a_good_archive_unpacks(tmp_path, maker):
    archive = maker(tmp_path / "a.arc", {"sky_train/v1/c1/0001.jpg": b"jpg",
                                         "sky_test/readme": b"hi"})
    target = tmp_path / "data"
    download.extract_archive(archive, target)
    assert (target / "sky_train/v1/c1/0001.jpg").read_bytes() == b"jpg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.arc", "data"]


@pytest.mark.parametrize("maker", [make_zip, make_tar])
@pytest.mark.parametrize("entries,symlink,reason", [
    ({"ok.txt": b"1", "../evil.txt": b"2"}, None, "outside"),
    ({"/etc/evil": b"2"}, None, "outside"),
    ({"a/../../evil": b"2"}, None, "outside"),
    ({"ok.txt": b"1"}, ("link", "/etc/passwd"), "link"),
])
def test_malicious_archives_are_refused(tmp_path, maker, entries, symlink, reason):
    archive = maker(tmp_path / "bad.arc", entries, symlink)
    target = tmp_path / "data"
    with pytest.raises(InputError, match=reason):
        download.extract_archive(archive, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.arc"]  # nothing unpacked
    assert not (tmp_path.parent / "evil.txt").exists()


def test_an_archive_over_the_size_limit_is_refused(tmp_path):
    archive = make_zip(tmp_path / "big.zip", {"big.bin": b"\0" * 100_000})
    with pytest.raises(InputError, match="unpacks to more than"):
        download.extract_archive(archive, tmp_path / "data", max_bytes=50_000)
    assert not (tmp_path / "data").exists()


def test_google_drive_warning_page_is_followed_to_the_file(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_is_google_drive", lambda url: True)  # pose as Drive
    dest = tmp_path / "test.bin"
    assert fetch(f"{server.url}/drive/test.bin", dest, sha256=DIGEST) == DIGEST
    assert [path for path, _ in server.requests] == ["/drive/test.bin",
                                                     "/drive/test.bin?id=X&confirm=t"]


def test_google_drive_confirmation_form_is_parsed():
    page = ('<html><form id="download-form" action="https://drive.usercontent.google.com/'
            'download" method="get"><input type="submit" value="Download anyway"/>'
            '<input type="hidden" name="id" value="ABC"><input type="hidden" name="export" '
            'value="download"><input type="hidden" name="confirm" value="t">'
            '<input type="hidden" name="uuid" value="u-1"></form></html>')
    url = download.google_drive_confirm_url(page, "https://drive.google.com/uc?id=ABC")
    assert url == ("https://drive.usercontent.google.com/download?id=ABC&export=download"
                   "&confirm=t&uuid=u-1")
    assert download.google_drive_confirm_url("<html>quota exceeded</html>", "https://x") is None


# --------------------------------------------------------------------- the registry and CLI


@pytest.fixture
def registry_env(tmp_path, monkeypatch):
    assets = [{"name": "test-asset", "filename": "test.bin", "url": "http://192.0.2.1/test.bin",
               "sha256": DIGEST, "size": len(PAYLOAD), "licence": "test", "used_by": "tests"},
              {"name": "test-data", "filename": "data.zip", "url": "http://192.0.2.1/data.zip",
               "sha256": None, "size": 0, "licence": "test", "used_by": "tests",
               "kind": "archive"}]
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(assets))
    env = {"LEXP_REGISTRY": str(reg), "LEXP_CACHE_DIR": str(tmp_path / "cache")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LEXP_MIRROR", raising=False)
    monkeypatch.delenv("LEXP_OFFLINE", raising=False)
    return env


def test_mirror_end_to_end_then_cached_then_verified_on_use(server, registry_env):
    proc = run_lexp("download", "test-asset", "--mirror", f"{server.url}/files",
                    env=registry_env)
    assert proc.returncode == 0, proc.stderr
    assert "downloaded and verified" in proc.stderr
    path = weights.path_for("test-asset")
    assert path.read_bytes() == PAYLOAD
    again = run_lexp("download", "test-asset", "--mirror", f"{server.url}/files",
                     env=registry_env)
    assert again.returncode == 0 and "already in the cache" in again.stderr
    assert len(server.requests) == 1
    listing = run_lexp("download", "--list", env=registry_env).stdout.decode()
    assert "test-asset" in listing and "raft-small" in listing
    path.write_bytes(PAYLOAD[:-1] + b"X")  # damage it
    with pytest.raises(InputError, match="damaged") as err:
        weights.path_for("test-asset")
    assert "--force" in err.value.hint


def test_missing_asset_names_the_command_to_run(registry_env):
    with pytest.raises(InputError) as err:
        weights.path_for("raft-small")
    assert "lexp download raft-small" in err.value.hint


def test_two_concurrent_downloads_both_succeed_with_one_file(server, registry_env):
    cmd = [sys.executable, "-m", "lexp", "download", "test-asset", "--mirror",
           f"{server.url}/slow"]
    env = {**os.environ, **registry_env}
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env) for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    cache = Path(registry_env["LEXP_CACHE_DIR"]) / "weights"
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == ["test.bin"]
    assert (cache / "test.bin").read_bytes() == PAYLOAD
    assert len([r for r in server.requests if r[0].startswith("/slow")]) == 1


def test_from_file_is_verified(tmp_path, registry_env):
    wrong = tmp_path / "raft.pth"
    wrong.write_bytes(b"not the weights")
    proc = run_lexp("download", "raft-small", "--from", str(wrong), env=registry_env)
    assert_clean_failure(proc)
    assert "does not match" in proc.stderr
    assert not (Path(registry_env["LEXP_CACHE_DIR"]) / "weights" / "raft_small_C_T_V2-01064c6d.pth"
                ).exists()
    good = tmp_path / "copy.bin"
    good.write_bytes(PAYLOAD)
    proc = run_lexp("download", "test-asset", "--from", str(good), env=registry_env)
    assert proc.returncode == 0, proc.stderr
    assert weights.path_for("test-asset").read_bytes() == PAYLOAD


def test_a_dataset_archive_is_imported_and_unpacked(tmp_path, registry_env):
    archive = make_zip(tmp_path / "data.zip", {"sky_train/v/c/0001.jpg": b"frame"})
    where = weights.import_file("test-data", archive)
    assert (where / "sky_train/v/c/0001.jpg").read_bytes() == b"frame"
    assert weights.path_for("test-data") == where


def test_offline_never_touches_the_network(server, registry_env):
    proc = run_lexp("download", "test-asset", "--mirror", f"{server.url}/files",
                    env={**registry_env, "LEXP_OFFLINE": "1"})
    assert_clean_failure(proc)
    assert "--from" in proc.stderr and server.requests == []


def test_unknown_names_fail_before_any_download(server, registry_env):
    proc = run_lexp("download", "test-asset", "nope", "--mirror", f"{server.url}/files",
                    env=registry_env)
    assert_clean_failure(proc, 2)
    assert server.requests == []


def test_no_network_error_names_from(registry_env):
    with pytest.raises(LexpError) as err:
        weights.ensure("test-asset", mirror="http://127.0.0.1:9", retries=0)
    assert "--from" in err.value.hint


def test_a_cache_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache should be")
    proc = run_lexp("download", "raft-small", "--mirror", "http://127.0.0.1:1",
                    env={"LEXP_CACHE_DIR": str(not_a_folder)})
    assert_clean_failure(proc)
    assert "Not a directory" in proc.stderr and "LEXP_CACHE_DIR" in proc.stderr
