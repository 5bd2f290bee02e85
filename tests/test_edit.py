"""`p2phd edit`: the editor's HTTP API on loopback, its answers to bad input, and the promise
that the downloaded maps and style map, given to the printed synthesize command, give back
the image the editor showed."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from p2phd.edit.editor import Editor, stroke_mask
from p2phd.edit.server import MAX_BODY, TOKEN_HEADER, EditServer, content_disposition
from p2phd.errors import ConfigError
from p2phd.runtime import DeviceOptions
from p2phd.synth.run import Run
from p2phd.synth.synthesizer import Synthesizer

from helpers import cli

CAR, BUILDING, VEGETATION = 6, 3, 4


class Client:
    """A tiny HTTP client for one editor server: (status, decoded body)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.token = ""

    def page_token(self) -> str:
        """The session token the page carries, as the page's script reads it."""
        if not self.token:
            with urllib.request.urlopen(self.url + "/", timeout=60) as response:
                page = response.read().decode()
            self.token = page.split('name="p2phd-token" content="', 1)[1].split('"', 1)[0]
        return self.token

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        sent = {}
        if method == "POST":  # as the page sends its changes
            sent = {"Content-Type": "application/json", TOKEN_HEADER: self.page_token()}
        sent.update(headers or {})
        req = urllib.request.Request(self.url + path, data, sent, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, self._decode(response)
        except urllib.error.HTTPError as error:
            return error.code, self._decode(error)

    @staticmethod
    def _decode(response: Any) -> Any:
        raw = response.read()
        kind = response.headers.get("Content-Type", "")
        if kind.startswith("application/json"):
            return json.loads(raw)
        if kind == "image/png":
            return np.asarray(Image.open(io.BytesIO(raw)))
        return raw

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def post(self, path: str, body: Any = None) -> Any:
        status, answer = self.request("POST", path, {} if body is None else body)
        assert status == 200, answer
        return answer


@pytest.fixture(scope="module")
def server(tiny_feature_run: Path, toy_data: Path) -> Iterator[EditServer]:
    test = toy_data / "test"
    editor = Editor(
        Synthesizer(Run.open(tiny_feature_run), DeviceOptions("cpu")),
        [test / "label"],
        [test / "inst"],
    )
    srv = EditServer(editor)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    editor.close()


@pytest.fixture
def client(server: EditServer) -> Client:
    c = Client(server.url)
    for key in ("toy_test_00001", "toy_test_00000"):  # each test starts from the files as they are
        if c.post("/api/open", {"key": key})["edited"]:
            c.post("/api/revert")
    return c


def first_pixel(mask: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs[0]), int(ys[0])


def test_lists_the_maps_and_selects_the_object_under_a_click(
    client: Client, toy_data: Path
) -> None:
    info = client.get("/api/info")
    assert info["maps"] == ["toy_test_00000", "toy_test_00001"]
    assert info["open"] == "toy_test_00000" and (info["width"], info["height"]) == (128, 64)
    assert [c["name"] for c in info["classes"]][CAR] == "car" and info["features"]
    inst = np.asarray(Image.open(toy_data / "test" / "inst" / "toy_test_00000.png"))
    car = min(int(i) for i in np.unique(inst) if i // 1000 == CAR)
    x, y = first_pixel(inst == car)
    picked = client.get(f"/api/select?x={x}&y={y}")
    ys, xs = np.nonzero(inst == car)
    assert picked["id"] == car and picked["name"] == "car" and picked["class"] == CAR
    assert picked["area"] == int((inst == car).sum())
    assert picked["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert picked["clusters"] == 2 and picked["style"] in (0, 1)
    outline = client.get(f"/api/outline.png?id={car}")
    assert outline.shape == (64, 128, 4)
    assert (outline[..., 3] > 0).sum() > 0 and not (outline[..., 3][inst != car]).any()
    swatches = client.get(f"/api/swatches?id={car}")["swatches"]
    assert len(swatches) == 2 and all(s.startswith("data:image/png;base64,") for s in swatches)


def test_restyle_by_cluster_changes_the_car_and_pins_its_style(
    client: Client, toy_data: Path
) -> None:
    inst = client.get("/api/download/inst.png").astype(int)
    car = min(int(i) for i in np.unique(inst) if i // 1000 == CAR)
    before = client.get("/api/image.png").astype(int)
    style = client.get(f"/api/object?id={car}")["style"]
    client.post("/api/restyle", {"id": car, "cluster": 1 - style})
    after = client.get("/api/image.png").astype(int)
    change = np.abs(after - before).sum(-1)
    assert change[inst == car].mean() > 3 * max(change[inst != car].mean(), 0.1)
    assert client.get("/api/download/style.json")["instances"][str(car)] == 1 - style
    state = client.post("/api/restyle", {"id": car, "cluster": None})  # a random other one
    assert client.get(f"/api/object?id={car}")["style"] == style and state["can_undo"]


def test_relabel_paint_undo_redo(client: Client) -> None:
    label0 = client.get("/api/download/label.png").astype(int)
    inst0 = client.get("/api/download/inst.png").astype(int)
    building = int(inst0[label0 == BUILDING][0])
    client.post("/api/relabel", {"id": building, "class": "vegetation"})  # by name
    label1 = client.get("/api/download/label.png").astype(int)
    assert (label1[inst0 == building] == VEGETATION).all()
    assert (label1[inst0 != building] == label0[inst0 != building]).all()
    client.post("/api/paint", {"points": [[10, 10], [30, 10]], "radius": 3, "class": CAR})
    label2 = client.get("/api/download/label.png").astype(int)
    inst2 = client.get("/api/download/inst.png").astype(int)
    painted = stroke_mask((64, 128), [[10, 10], [30, 10]], 3)
    assert (label2[painted] == CAR).all() and (label2[~painted] == label1[~painted]).all()
    new = int(inst2[10, 20])
    assert new // 1000 == CAR and new not in np.unique(inst0)  # a new object, a fresh id
    assert (inst2 == new).sum() == painted.sum()
    client.post("/api/erase", {"points": [[60, 30]], "radius": 2})
    assert client.get("/api/download/label.png")[30, 60] == 0
    client.post("/api/undo")
    client.post("/api/undo")
    assert (client.get("/api/download/label.png") == label1).all()
    state = client.post("/api/redo")
    assert (client.get("/api/download/label.png") == label2).all()
    assert state["can_undo"] and state["can_redo"]


def test_each_map_keeps_its_edits_and_undo_history_when_switching(client: Client) -> None:
    original0 = client.get("/api/download/label.png").astype(int)
    client.post("/api/paint", {"points": [[10, 10], [30, 10]], "radius": 3, "class": CAR})
    painted0 = client.get("/api/download/label.png").astype(int)
    client.post("/api/open", {"key": "toy_test_00001"})
    original1 = client.get("/api/download/label.png").astype(int)
    state = client.post("/api/erase", {"points": [[60, 30]], "radius": 4})
    assert state["edited"] == ["toy_test_00000", "toy_test_00001"]

    state = client.post("/api/open", {"key": "toy_test_00000"})
    assert state["can_undo"] and not state["can_redo"]
    assert (client.get("/api/download/label.png") == painted0).all()  # the edit is still there
    client.post("/api/undo")
    assert (client.get("/api/download/label.png") == original0).all()  # and can be undone
    state = client.post("/api/open", {"key": "toy_test_00001"})
    assert state["edited"] == ["toy_test_00001"]  # undone: the same as its file again
    assert client.get("/api/download/label.png")[30, 60] == 0

    state = client.post("/api/revert")  # back to the file, as one edit that undo takes back
    assert (client.get("/api/download/label.png") == original1).all() and state["can_undo"]
    assert state["edited"] == []
    client.post("/api/undo")
    assert client.get("/api/download/label.png")[30, 60] == 0


def test_the_printed_command_reproduces_the_editors_image(
    client: Client, tiny_feature_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = client.get("/api/download/inst.png").astype(int)
    car = min(int(i) for i in np.unique(inst) if i // 1000 == CAR)
    client.post("/api/restyle", {"id": car, "cluster": 0})
    client.post("/api/paint", {"points": [[90, 40], [100, 44]], "radius": 4, "class": "person"})
    client.post("/api/relabel", {"id": int(inst[0, 0]), "class": "building"})
    shown = client.get("/api/image.png")
    answer = client.get("/api/command")
    files = answer["files"]
    for kind, path in [("label", "label.png"), ("inst", "inst.png"), ("style", "style.json")]:
        status, body = client.request("GET", f"/api/download/{path}")
        assert status == 200
        if kind == "style":
            (tmp_path / files[kind]).write_text(json.dumps(body))
        else:
            Image.fromarray(body).save(tmp_path / files[kind])
    words = shlex.split(answer["command"])
    assert words[:3] == ["p2phd", "synthesize", str(tiny_feature_run)]
    monkeypatch.chdir(tmp_path)
    code, out = cli(*words[1:], "--quiet")
    assert code == 0, out
    (image,) = (tmp_path / "edited").glob("*.png")
    assert np.array_equal(np.asarray(Image.open(image)), shown)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/api/nothing", None, 404, "no such page or endpoint"),
        ("GET", "/../../etc/passwd", None, 404, "no such page or endpoint"),
        ("GET", "/api/download/../../config.json", None, 404, "no such page or endpoint"),
        ("GET", "/api/select?x=500&y=1", None, 400, "outside the 128x64 map"),
        ("GET", "/api/select?x=a&y=1", None, 400, "x: give an integer"),
        ("GET", "/api/object?id=99999", None, 404, "no object with the id 99999"),
        ("GET", "/api/swatches", None, 400, "id: give an integer"),
        ("POST", "/api/open", {"key": "../../etc/passwd"}, 404, "no label map with the key"),
        ("POST", "/api/relabel", {"id": 1, "class": "dragon"}, 400, "dragon"),
        ("POST", "/api/relabel", {"id": 1, "class": 99}, 400, "99"),
        ("POST", "/api/restyle", {"id": 1, "cluster": 7}, 400, "cluster 7"),
        ("POST", "/api/restyle", {"id": True}, 400, "id: give an integer"),
        ("POST", "/api/paint", {"points": "x", "radius": 3, "class": 1}, 400, "a stroke is"),
        ("POST", "/api/paint", {"points": [[1, 1]], "radius": 1e9, "class": 1}, 400, "radius"),
        ("POST", "/api/paint", {"points": [[-99, -99]], "radius": 2, "class": 1}, 400, "touch"),
        ("POST", "/api/redo", {}, 400, "nothing to redo"),
        ("POST", "/api/upload", {"label": "%%%"}, 400, "label: not valid base64"),
        ("POST", "/api/upload", {"label": "aGVsbG8=", "inst": "aGVsbG8="}, 400, "uploaded label"),
        ("POST", "/api/photo-style", {"id": 1, "photo": "aGVsbG8="}, 400, "uploaded photo"),
        ("POST", "/api/open", [1, 2], 400, "must be a JSON object"),
    ],
)
def test_bad_input_gets_one_line_and_the_server_keeps_serving(
    client: Client, method: str, path: str, body: Any, status: int, message: str
) -> None:
    code, answer = client.request(method, path, body)
    assert code == status, answer
    assert message in answer["error"] and "\n" not in answer["error"]
    assert client.get("/api/info")["open"] == "toy_test_00000"


def test_uploads_are_checked_like_synthesize_checks_files(client: Client) -> None:
    def png(array: np.ndarray) -> str:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        import base64

        return base64.b64encode(buffer.getvalue()).decode()

    label = client.get("/api/download/label.png")
    inst = client.get("/api/download/inst.png")
    bad_range = label.copy()
    bad_range[0, 0] = 200
    code, answer = client.request(
        "POST", "/api/upload", {"label": png(bad_range), "label_name": "x.png", "inst": png(inst)}
    )
    assert code == 400 and answer["error"].startswith("uploaded label x.png: label value 200")
    code, answer = client.request(
        "POST", "/api/upload", {"label": png(label), "inst": png(inst[:32])}
    )
    assert code == 400 and "use maps of one size" in answer["error"]
    code, answer = client.request("POST", "/api/upload", {"label": png(label)})
    assert code == 400 and "upload the instance PNG too" in answer["error"]
    state = client.post(
        "/api/upload", {"label": png(label), "label_name": "mine.png", "inst": png(inst)}
    )
    assert state["open"] == "mine" and not state["can_undo"]
    assert (client.get("/api/download/label.png") == label).all()
    client.post("/api/paint", {"points": [[5, 5]], "radius": 2, "class": CAR})
    state = client.post(  # a second upload of that name keeps the first and its edit
        "/api/upload", {"label": png(label), "label_name": "mine.png", "inst": png(inst)}
    )
    assert state["open"] == "mine-2" and state["edited"] == ["mine"]
    assert {"mine", "mine-2"} <= set(state["maps"])


def test_requests_for_other_hosts_and_oversized_bodies_are_refused(client: Client) -> None:
    code, answer = client.request("GET", "/api/info", headers={"Host": "evil.example:80"})
    assert code == 400 and "127.0.0.1 only" in answer["error"]
    req = urllib.request.Request(
        client.url + "/api/upload",
        b"{}",
        {
            "Content-Length": str(MAX_BODY + 1),
            "Content-Type": "application/json",
            TOKEN_HEADER: client.page_token(),
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 400 and b"limited to 32 MiB" in refused.value.read()
    assert client.get("/api/info")["maps"]


def test_other_origins_cannot_drive_the_editor(client: Client) -> None:
    """CSRF: a page of another origin can make the browser send requests; they change
    nothing (issue 24)."""
    before = client.get("/api/info")
    state = client.post("/api/open", {"key": "toy_test_00000"})
    label_before = client.get("/api/label.png")
    attempts = [
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "text/plain"},  # a "simple" request needs no preflight
        {TOKEN_HEADER: "guessed"},
    ]
    for headers in attempts:
        code, answer = client.request("POST", "/api/relabel", {"id": 6001, "class": "sky"},
                                      headers=headers)  # fmt: skip
        assert code == 403 and "error" in answer, (headers, answer)
    code, answer = client.request("GET", "/api/info", headers={"Origin": "http://evil.example"})
    assert code == 403
    assert np.array_equal(client.get("/api/label.png"), label_before)  # nothing changed
    again = client.post("/api/open", {"key": "toy_test_00000"})
    assert state["open"] == again["open"] and state["can_undo"] == again["can_undo"]
    assert client.get("/api/info")["maps"] == before["maps"]
    own = client.url.removesuffix("/")
    code, _ = client.request("POST", "/api/open", {"key": "toy_test_00000"},
                             headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})  # fmt: skip
    assert code == 200  # the page's own origin is fine


def test_download_names_cannot_inject_headers(client: Client, tmp_path: Path) -> None:
    named = {"label": "AAAA", "label_name": "x\r\nSet-Cookie: a=1.png"}
    code, answer = client.request("POST", "/api/upload", named)
    assert code == 400 and "control characters" in answer["error"]
    assert content_disposition("a\r\nSet-Cookie: x=1.png") == (
        'attachment; filename="a__Set-Cookie: x=1.png"; '
        "filename*=UTF-8''aSet-Cookie%3A%20x%3D1.png"
    )
    req = urllib.request.Request(client.url + "/api/download/label.png")
    with urllib.request.urlopen(req, timeout=60) as response:
        disposition = response.headers.get_all("Content-Disposition")
        assert len(disposition) == 1 and "filename*=UTF-8''" in disposition[0]
        assert response.headers.get("Set-Cookie") is None


def test_page_and_its_files_are_served(client: Client) -> None:
    page = client.get("/").decode()
    assert f'name="p2phd-token" content="{client.page_token()}"' in page
    assert len(client.page_token()) >= 24
    assert '<script src="/editor.js">' in page and "http" not in page.replace("http-equiv", "")
    assert b"/api/select" in client.get("/editor.js")
    assert b".swatch" in client.get("/editor.css")


def test_stroke_mask_covers_the_capsule_around_the_line() -> None:
    mask = stroke_mask((20, 40), [[5, 10], [30, 10]], 2)
    assert mask[10, 5:31].all() and mask[8, 20] and not mask[7, 20] and not mask[10, 33]
    assert stroke_mask((20, 40), [[3, 3]], 1).sum() == 5  # a single point: a small disc
    with pytest.raises(ConfigError, match="touch"):
        stroke_mask((20, 40), [[100, 100]], 2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_edit_command_serves_until_signalled(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """Started with both signals ignored (as a shell's background job, or a CI wrapper, starts
    it), the server still stops on either within seconds: exit 128 + N, its port free, its
    temporary folder gone, and no traceback."""
    test, temp = toy_data / "test", tmp_path / "tmp"
    temp.mkdir()
    args = [sys.executable, "-m", "p2phd", "edit", str(tiny_feature_run), str(test / "label")]

    def ignore_both() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    proc = subprocess.Popen(
        [*args, "--inst", str(test / "inst"), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
        preexec_fn=ignore_both,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("p2phd edit: open http://127.0.0.1:"), line or proc.stderr.read()
        url = line.split()[3]
        assert Client(url).get("/api/info")["maps"] == ["toy_test_00000", "toy_test_00001"]
        assert [p.name[:11] for p in temp.iterdir()] == ["p2phd-edit-"]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig and "Traceback" not in err, err
    how = "interrupted (Ctrl-C)" if sig == signal.SIGINT else "terminated (SIGTERM)"
    assert err.strip().splitlines()[-1] == f"stopped: {how}; the server is closed", err
    assert list(temp.iterdir()) == []
    with socket.socket() as free:  # the port is given back (a server would bind it again)
        free.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        free.bind(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))))


def test_a_client_that_goes_away_is_no_traceback(
    server: EditServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """A browser tab closed mid-request leaves the terminal quiet, and the server serves on."""
    host, port = server.server_address[:2]
    for _ in range(3):
        with socket.create_connection((str(host), int(port))) as conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.sendall(b"GET /api/image.png HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        # closed with a reset before the photo is sent: the server meets a reset connection
    time.sleep(0.5)
    assert Client(server.url).get("/api/info")["maps"]
    assert "Traceback" not in capfd.readouterr().err


def test_edit_refuses_a_bad_run_in_one_line(tmp_path: Path) -> None:
    code, out = cli("edit", tmp_path / "nowhere")
    assert code == 2 and "not a p2phd run" in out and len(out.strip().splitlines()) == 1
