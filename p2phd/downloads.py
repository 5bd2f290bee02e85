"""The pretrained weights p2phd uses but does not train, fetched once into a cache.

VGG19 (the perceptual loss) and pytorch-fid's Inception (FID, KID) come from their official
URLs and are checked against a pinned SHA-256 before they are used: the full digest where it
is published, else the leading digits that torch.hub's file names carry (`vgg19-dcbb9e9d`,
the check torchvision itself makes). A download goes to a `.part` file beside its place and
is renamed into place only once checked, so the cache never holds a half file; an
interrupted download resumes from where it stopped (an HTTP range request).

The cache is `$P2PHD_HOME/weights`, else `p2phd/weights` in the user's cache folder
(`$XDG_CACHE_HOME`, else `~/.cache`). The options that take these files default to the
cached file when it is there.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from p2phd.atomic import make_dirs, writing
from p2phd.errors import ConfigError, DownloadError
from p2phd.nets.inception import INCEPTION_FILE, INCEPTION_URL
from p2phd.weights import sha256_file

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet weights (IMAGENET1K_V1)
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
_BLOCK = 1 << 20
_TIMEOUT_S = 60


@dataclass(frozen=True)
class KnownWeights:
    """A weights file p2phd can fetch: where from, its pinned digest, and the option that
    takes it."""

    name: str
    file: str
    url: str
    sha256: str  # the full hex digest, or the leading digits the file's published name gives
    option: str
    purpose: str

    def fetch_hint(self) -> str:
        """What to type to get this file (for messages that ask for it)."""
        return f"fetch it with `p2phd weights fetch {self.name}` ({self.url})"


KNOWN: dict[str, KnownWeights] = {
    w.name: w
    for w in (
        KnownWeights("vgg19", VGG19_FILE, VGG19_URL, "dcbb9e9d", "--vgg-weights", "the VGG loss"),
        KnownWeights(
            "inception",
            INCEPTION_FILE,
            INCEPTION_URL,
            "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            "--inception",
            "FID and KID",
        ),
    )
}


def cache_dir() -> Path:
    """Where fetched weights live: `$P2PHD_HOME/weights`, else the user's cache folder."""
    home = os.environ.get("P2PHD_HOME")
    if home:
        return Path(home).expanduser() / "weights"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "p2phd" / "weights"


def known(name: str) -> KnownWeights:
    """The registry entry `name`, or a one-line error listing the names there are."""
    if name not in KNOWN:
        raise ConfigError(f"weights {name!r}: unknown; choose one of {', '.join(KNOWN)}")
    return KNOWN[name]


def cached(name: str) -> Path | None:
    """The cached file of the known weights `name`, when it has been fetched."""
    path = cache_dir() / known(name).file
    return path if path.is_file() else None


def _matches(digest: str, pinned: str) -> bool:
    return digest.startswith(pinned.lower())


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    downloaded: int  # bytes transferred this time (0: the cached file was already right)
    resumed_from: int  # bytes of an earlier, interrupted download that were kept


def fetch(
    name: str,
    *,
    url: str | None = None,
    sha256: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Fetched:
    """Download the known weights `name` into the cache (unless the right file is there),
    check the pinned digest and rename it into place. `url` and `sha256` replace the
    official ones (a mirror, or a test's own server)."""
    entry = known(name)
    url, pinned = url or entry.url, (sha256 or entry.sha256).lower()
    dest = cache_dir() / entry.file
    if dest.is_file():
        digest = sha256_file(dest)
        if _matches(digest, pinned):
            return Fetched(dest, digest, 0, 0)
    make_dirs(dest.parent)
    part = dest.parent / f".{dest.name}.part"
    kept = part.stat().st_size if part.is_file() else 0
    kept, downloaded = _download(url, part, kept, on_progress)
    digest = sha256_file(part)
    if not _matches(digest, pinned):
        part.unlink()
        raise DownloadError(
            f"{url}: the file's SHA-256 is {digest}, not the pinned {pinned}; it was deleted "
            "(a damaged download or a changed file: try again, or report the URL)"
        )
    with writing(dest):
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
    return Fetched(dest, digest, downloaded, kept)


def _download(
    url: str, part: Path, kept: int, on_progress: Callable[[int, int], None] | None
) -> tuple[int, int]:
    """Append `url`'s bytes from `kept` on to `part`: the bytes kept and those written (a
    server without range support sends the whole file, and `part` starts again)."""
    request = urllib.request.Request(url, headers={"User-Agent": "p2phd"})
    if kept:
        request.add_header("Range", f"bytes={kept}-")
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and kept:  # the part is already whole (or longer): start again
            part.unlink()
            return _download(url, part, 0, on_progress)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"{url}: cannot download ({reason}); check the network, or download the file "
            "by hand and pass it to the option that takes it"
        ) from None
    with response:
        restarted = kept and response.status != 206
        start = 0 if restarted else kept
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else 0
        written = 0
        with writing(part), open(part, "wb" if restarted or not kept else "ab") as out:
            while True:
                try:
                    block = response.read(_BLOCK)
                except OSError as exc:  # the connection dropped: the part stays, to resume
                    raise DownloadError(
                        f"{url}: the download stopped after {start + written} bytes ({exc}); "
                        "run the same command again to resume it"
                    ) from None
                if not block:
                    break
                out.write(block)
                written += len(block)
                if on_progress is not None:
                    on_progress(start + written, total or start + written)
    if total and start + written < total:
        raise DownloadError(
            f"{url}: the download stopped after {start + written} of {total} bytes; "
            "run the same command again to resume it"
        )
    return start, written
