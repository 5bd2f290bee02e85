"""Headless Chromium driven over the DevTools protocol through a pipe (no websocket, no extra
package): enough to load the editor, click like a user, wait, and take screenshots.

Also a script, to make the README's screenshot from any run:
    python tests/browser.py RUN LABELS INST OUT.png
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium with one page; `send` a DevTools command, read `events`."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="p2phd-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def pipes() -> None:  # the protocol runs on the browser's fds 3 (in) and 4 (out)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile.name}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [binary, *flags],
            preexec_fn=pipes,
            pass_fds=(3, 4),
            start_new_session=True,  # its helpers too are stopped at close, as one group
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.events: list[dict[str, Any]] = []
        self._answers: dict[int, dict[str, Any]] = {}
        self._ready = threading.Condition()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                with self._ready:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._ready.notify_all()

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False
    ) -> dict[str, Any]:
        with self._ready:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._ready:
            if not self._ready.wait_for(lambda: ident in self._answers, timeout=60):
                raise TimeoutError(f"{method}: no answer from the browser in 60 s")
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        """Poll until `expression` is truthy in the page."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.evaluate(f"Boolean({expression})"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"waited {timeout} s for {expression}")

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", params, session=True)

    def click_element(self, selector: str) -> None:
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({selector!r})"
            ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()"
        )
        self.click(box[0] + box[2] / 2, box[1] + box[3] / 2)

    def screenshot(self, clip: list[float] | None = None) -> np.ndarray:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": False}
        if clip:
            params["clip"] = dict(zip(("x", "y", "width", "height"), clip, strict=True)) | {
                "scale": 1
            }
        data = base64.b64decode(self.send("Page.captureScreenshot", params, session=True)["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def errors(self) -> list[str]:
        """What the page reported as errors: exceptions, console.error, failed loads."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"].get("text")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # whatever of the group is still there
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.close(self._to_browser)
        self._profile.cleanup()


def map_box(browser: Browser, stack: str) -> list[float]:
    """The page rectangle of a map pane (the label map or the image)."""
    return browser.evaluate(
        f"(() => {{ const r = document.getElementById({stack!r}).getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height]; })()"
    )


def open_editor(browser: Browser, url: str) -> None:
    browser.send("Page.navigate", {"url": url}, session=True)
    browser.wait_for("document.body && document.body.dataset.version")


def screenshot_page(run: Path, labels: Path, inst: Path, out: Path) -> None:
    """Start the editor on `run`, select the first car, and save a screenshot of the page."""
    from p2phd.edit.editor import Editor
    from p2phd.edit.server import EditServer
    from p2phd.synth.run import Run
    from p2phd.synth.synthesizer import Synthesizer

    binary = find_chromium()
    if binary is None:
        raise SystemExit("chromium not found")
    editor = Editor(Synthesizer(Run.open(run)), [labels], [inst])
    server = EditServer(editor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Browser(binary, 1280, 760)
    try:
        open_editor(browser, server.url)
        maps = editor.maps
        assert maps is not None and maps.inst is not None
        car = int(min(i for i in np.unique(maps.inst) if i // 1000 == 6))
        ys, xs = np.nonzero(maps.inst == car)
        x, y, w, _ = map_box(browser, "label-stack")
        scale = w / maps.label.shape[1]
        browser.click(x + (xs.mean() + 0.5) * scale, y + (ys.mean() + 0.5) * scale)
        browser.wait_for("document.querySelectorAll('#swatches .swatch').length > 0")
        Image.fromarray(browser.screenshot()).save(out)
    finally:
        browser.close()
        server.shutdown()
        editor.close()


if __name__ == "__main__":
    screenshot_page(*(Path(a) for a in sys.argv[1:5]))
