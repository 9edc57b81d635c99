"""Checkpoints by URL: one verified download into a cache, shared by every process.

``init_cfg=dict(type='Pretrained', checkpoint='https://...')``, ``load_from`` and
``tools/test.py CONFIG https://...`` come here once mmeffformer is imported (mmengine's
``http://`` / ``https://`` loader is replaced, see :func:`register_url_loader`).

- Cache: ``$MMEFFFORMER_CACHE`` if set, else torch hub's ``<hub dir>/checkpoints``
  (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), the
  folder mmengine and torch hub download into, so a file they fetched is reused.
- File name: the URL's own when it ends in a content hash (``name-<sha256 prefix>.ext``,
  torch hub's convention); other URLs (Hugging Face's ``.../resolve/main/model.safetensors``
  share one name) are cached under ``<host>/<path>``.
- A name with a hash is verified after the download and on every cache hit; a mismatch
  is refused and the file removed, naming both hashes (mmengine checks nothing).
- The transfer goes to a temporary file beside the target and is renamed into place only
  when complete, so an interrupted download never stays in the cache.
- An exclusive file lock around the download makes concurrent processes (the ranks of a
  distributed run, two jobs started at once) wait for one download and then read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Callable, Iterator, Optional

from mmengine.logging import print_log

from .reading import UnreadableCheckpointError, read_checkpoint

#: overrides the cache folder
CACHE_ENV = 'MMEFFFORMER_CACHE'
#: ``name-<8 to 64 hex digits>.ext``: the digits start the file's sha256 (torch hub, mmpretrain)
HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,64})\.[^.]+$')
CHUNK = 1 << 20
TIMEOUT_S = 60.0


class CheckpointDownloadError(OSError):
    """A checkpoint URL could not be downloaded or did not verify; nothing was cached."""


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept (see the module docstring)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / 'checkpoints'


def cached_path(url: str, folder: Optional[Path] = None) -> Path:
    """The cache file for ``url``."""
    folder = Path(folder) if folder is not None else cache_dir()
    parts = urllib.parse.urlparse(url)
    name = os.path.basename(parts.path)
    if not name:
        raise ValueError(f'Checkpoint URL {url!r} does not name a file')
    if HASH_IN_NAME.search(name):
        return folder / name
    relative = [p for p in parts.path.split('/') if p not in ('', '.', '..')]
    return folder.joinpath(parts.netloc.replace(':', '_'), *relative)


def expected_hash_prefix(url_or_name: str) -> Optional[str]:
    """The sha256 prefix a file name carries, or None."""
    match = HASH_IN_NAME.search(os.path.basename(urllib.parse.urlparse(url_or_name).path))
    return match.group(1) if match else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def offline_hint(url: str, target: Path) -> str:
    """What to do without a connection: where the file goes, how to use a local copy."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    return (
        f'  It would be cached at {target}\n'
        f'  Without network access, download {url} elsewhere and copy it to that path, '
        f'or point the config at a local copy, e.g.\n'
        f'    --cfg-options model.backbone.init_cfg.checkpoint=/path/to/{name}\n'
        f'  (for a whole-model checkpoint: --cfg-options load_from=/path/to/{name}). '
        f'Set {CACHE_ENV} to use another cache folder.'
    )


class _Progress:
    """A progress bar on a terminal; a start and an end line otherwise (logs)."""

    def __init__(self, url: str, target: Path, total: Optional[int], stream: IO[str]) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.tty = hasattr(stream, 'isatty') and stream.isatty()
        self.start = self.last = time.monotonic()
        size = f' ({total / 1e6:.1f} MB)' if total else ''
        stream.write(f'Downloading {url}{size}\n  to {target}\n')
        stream.flush()

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.tty and now - self.last > 0.2:
            self.last = now
            self.stream.write('\r' + self._bar())
            self.stream.flush()

    def _bar(self) -> str:
        megabytes = self.done / 1e6
        if not self.total:
            return f'  {megabytes:.1f} MB'
        share = self.done / self.total
        filled = int(30 * share)
        return f'  [{"#" * filled}{"." * (30 - filled)}] {share:4.0%} of {self.total / 1e6:.1f} MB'

    def close(self) -> None:
        seconds = time.monotonic() - self.start
        prefix = '\r' + self._bar() + '\n' if self.tty else ''
        self.stream.write(f'{prefix}  done: {self.done / 1e6:.1f} MB in {seconds:.1f} s\n')
        self.stream.flush()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (POSIX ``flock``; no lock elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock, the rename still keeps files whole
        yield
        return
    with open(lock_path, 'a') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _transfer(url: str, target: Path, progress: bool, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``, then rename it into place."""
    expected = expected_hash_prefix(url)
    handle, temporary = tempfile.mkstemp(
        prefix=f'.{target.name}.', suffix='.partial', dir=target.parent
    )
    temporary = Path(temporary)
    try:
        with os.fdopen(handle, 'wb') as out:
            request = urllib.request.Request(url, headers={'User-Agent': 'mmeffformer'})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get('Content-Length')
                total = int(length) if length and length.isdigit() else None
                bar = _Progress(url, target, total, sys.stderr) if progress else None
                digest = hashlib.sha256()
                received = 0
                for block in iter(lambda: response.read(CHUNK), b''):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    if bar:
                        bar.update(len(block))
                if total is not None and received != total:
                    raise http.client.IncompleteRead(b'', total - received)
                if bar:
                    bar.close()
        actual = digest.hexdigest()
        if expected and not actual.startswith(expected):
            raise CheckpointDownloadError(
                f'The checkpoint downloaded from {url} has sha256 {actual}, but its name '
                f'says it starts with {expected}: the file was refused and removed '
                f'(nothing was cached). The server may hold another file under this name.'
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def download_checkpoint(
    url: str,
    folder: Optional[Path] = None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """The local file for checkpoint ``url``: cached, or downloaded once and verified.

    Raises:
        CheckpointDownloadError: no connection, an HTTP error, an interrupted transfer or
            a hash mismatch; the message names the URL, the cache path and what to do.
    """
    target = cached_path(url, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = expected_hash_prefix(url)
    with _exclusive(target.with_name(target.name + '.lock')):
        if target.is_file():
            if not expected:
                return target
            actual = sha256_of(target)
            if actual.startswith(expected):
                return target
            target.unlink()
            print_log(
                f'The cached checkpoint {target} has sha256 {actual}, but its name says it '
                f'starts with {expected}: removed, downloading it again.',
                logger='current',
                level=logging.WARNING,
            )
        try:
            _transfer(url, target, progress, timeout)
        except CheckpointDownloadError:
            raise
        except urllib.error.HTTPError as error:
            raise CheckpointDownloadError(
                f'Could not download the checkpoint {url}: the server answered HTTP '
                f'{error.code} {error.reason}.\n{offline_hint(url, target)}'
            ) from error
        except http.client.IncompleteRead as error:
            raise CheckpointDownloadError(
                f'The download of the checkpoint {url} was interrupted ({error.expected} '
                f'bytes missing); nothing was cached. Run again to retry.\n'
                f'{offline_hint(url, target)}'
            ) from error
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, OSError) as error:
            reason = getattr(error, 'reason', error)
            raise CheckpointDownloadError(
                f'Could not download the checkpoint {url} ({type(error).__name__}: {reason}).\n'
                f'{offline_hint(url, target)}'
            ) from error
    return target


def load_from_url(
    filename: str,
    map_location=None,
    model_dir: Optional[str] = None,
    progress: bool = True,
):
    """mmengine's ``http(s)://`` checkpoint loader, with our cache, checks and errors."""
    path = download_checkpoint(filename, Path(model_dir) if model_dir else None, progress)
    try:
        return read_checkpoint(path, map_location=map_location)
    except UnreadableCheckpointError as error:
        raise UnreadableCheckpointError(
            f'{error}\n  It was downloaded from {filename}; delete {path} to download it again.'
        ) from error.__cause__


def register_url_loader(loader: Callable = load_from_url) -> None:
    """Route mmengine's ``http://`` / ``https://`` checkpoints to ``loader`` (by default
    :func:`load_from_url`; idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=loader, force=True)
