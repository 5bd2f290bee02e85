"""`p2phd weights fetch`: official URLs, pinned SHA-256, atomic, resumable; the options that
take the weights default to the cached file. Served by a local HTTP server; never the net."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from p2phd import downloads
from p2phd.nets.vgg import Vgg19Features

from helpers import TINY, cli


class Server:
    """Serves `body` at /file, with HTTP ranges unless `ranges` is off; records the Range
    headers it got and can stop after `cut` bytes (a dropped connection)."""

    def __init__(self, body: bytes) -> None:
        self.body, self.ranges, self.cut = body, True, None
        self.asked: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked = self.headers.get("Range")
                server.asked.append(asked)
                start = int(asked[6:-1]) if asked and server.ranges else 0
                data = server.body[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: server.cut] if server.cut is not None else data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(bytes(range(256)) * 4096 + b"tail")  # 1 MiB and a bit: several blocks
    yield s
    s.httpd.shutdown()


def fetch(server: Server, *extra: object) -> tuple[int, str]:
    digest = hashlib.sha256(server.body).hexdigest()
    return cli("weights", "fetch", "inception", "--url", server.url, "--sha256", digest, *extra)


def test_the_registry_pins_official_urls_and_digests() -> None:
    vgg, inception = downloads.KNOWN["vgg19"], downloads.KNOWN["inception"]
    assert vgg.url == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert vgg.sha256 == "dcbb9e9d"  # torch.hub's published prefix: the check torchvision makes
    assert inception.url == (
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth"
    )
    assert len(inception.sha256) == 64 and inception.sha256.startswith("6726825d")


def test_fetch_downloads_checks_and_writes_into_the_cache(server: Server) -> None:
    code, out = fetch(server)
    assert code == 0, out
    path = downloads.cache_dir() / "pt_inception-2015-12-05-6726825d.pth"
    assert path.read_bytes() == server.body and downloads.cached("inception") == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no .part left
    code, out = fetch(server)
    assert code == 0 and "already there" in out and len(server.asked) == 1


def test_a_wrong_digest_is_refused_and_nothing_is_cached(server: Server) -> None:
    code, out = cli("weights", "fetch", "vgg19", "--url", server.url, "--quiet")
    assert code == 2 and server.url in out and "not the pinned dcbb9e9d" in out
    assert "Traceback" not in out and list(downloads.cache_dir().iterdir()) == []


def test_an_interrupted_download_resumes_where_it_stopped(server: Server) -> None:
    server.cut = 300_000
    code, out = fetch(server, "--quiet")
    assert code == 2 and "run the same command again to resume it" in out
    assert downloads.cached("inception") is None
    server.cut = None
    code, out = fetch(server, "--json")
    assert code == 0, out
    assert server.asked == [None, "bytes=300000-"] and '"resumed_from": 300000' in out
    assert downloads.cached("inception").read_bytes() == server.body


def test_a_server_without_ranges_restarts_from_the_first_byte(server: Server) -> None:
    server.cut, server.ranges = 300_000, False
    assert fetch(server, "--quiet")[0] == 2
    server.cut = None
    assert fetch(server, "--quiet")[0] == 0
    assert downloads.cached("inception").read_bytes() == server.body


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    code, out = cli("weights", "fetch", "vgg19", "--url", "http://127.0.0.1:9/x", "--quiet")
    assert code == 2 and "http://127.0.0.1:9/x: cannot download" in out
    assert "Traceback" not in out


def test_weights_list_names_the_cache_and_the_urls() -> None:
    code, out = cli("weights", "list")
    assert code == 0 and str(downloads.cache_dir()) in out
    assert "not fetched: p2phd weights fetch vgg19" in out and downloads.VGG19_URL in out


def test_messages_that_ask_for_weights_name_the_command_and_url(
    toy_data: Path, tmp_path: Path
) -> None:
    with_vgg = [a for a in TINY if a != "--no-vgg-loss"]
    code, out = cli("train-global", toy_data, "--run", tmp_path / "r", *with_vgg)
    assert code == 2 and "p2phd weights fetch vgg19" in out and downloads.VGG19_URL in out
    folders = ["--fake", tmp_path, "--real", tmp_path, "--out", tmp_path / "eval"]
    code, out = cli("evaluate", *folders, "--inception", "x.pth")
    assert code == 2 and "p2phd weights fetch inception" in out


def test_vgg_weights_default_to_the_cached_file(toy_data: Path, tmp_path: Path) -> None:
    cache = downloads.cache_dir()
    cache.mkdir(parents=True)
    vgg = {
        f"features.{k}": torch.randn_like(v) * 0.05
        for k, v in Vgg19Features().features.state_dict().items()
    }
    torch.save(vgg, cache / "vgg19-dcbb9e9d.pth")
    with_vgg = [a for a in TINY if a != "--no-vgg-loss"]
    run = tmp_path / "run"
    code, out = cli("train-global", toy_data, "--run", run, *with_vgg, "--max-steps", "1")
    assert code == 0, out
    config = (run / "config.json").read_text()
    assert str(cache / "vgg19-dcbb9e9d.pth") in config
