"""Where a long demo run is, on the terminal, while mmengine's full log goes to a file."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import IO, Any, Dict, Iterator, Optional, Tuple

from mmengine.hooks import Hook


def format_seconds(seconds: float) -> str:
    """``75.4`` -> ``'1:15'``."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f'{minutes}:{seconds:02d}'


class ProgressHook(Hook):
    """One status line per phase: training iteration, loss and ETA, then evaluation.

    On a terminal the line is rewritten in place; elsewhere (CI, a pipe) a line is
    printed every tenth of the training and at the end of each evaluation. The ETA
    counts training iterations only, so evaluations in between do not inflate it.
    After each evaluation a line gives the ``headline`` metrics; the last
    evaluation's metrics stay in :attr:`metrics`.

    Args:
        phase: what the line starts with, e.g. ``'[2/2] Mask R-CNN'``.
        headline: ``{metric key: (label, factor to percent)}`` shown after evaluations.
        stream: where to write (default: the process's real stdout, which stays the
            terminal while ``sys.stdout`` is redirected to a log file).
    """

    priority = 'VERY_LOW'

    def __init__(
        self,
        phase: str,
        headline: Optional[Dict[str, Tuple[str, float]]] = None,
        stream: Optional[IO[str]] = None,
    ) -> None:
        self.phase = phase
        self.headline = headline or {}
        self.stream = stream if stream is not None else sys.__stdout__
        self.in_place = self.stream.isatty()
        self.metrics: Dict[str, float] = {}
        self.train_seconds = 0.0
        self._iter_start = 0.0
        self._loss = float('nan')

    def _show(self, text: str, last: bool) -> None:
        if self.in_place:
            self.stream.write('\r' + text.ljust(79) + ('\n' if last else ''))
        else:
            self.stream.write(text + '\n')
        self.stream.flush()

    def _every(self, total: int) -> int:
        return 1 if self.in_place else max(1, total // 10)

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._iter_start = time.perf_counter()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self.train_seconds += time.perf_counter() - self._iter_start
        done, total = runner.iter + 1, runner.max_iters
        if outputs and 'loss' in outputs:
            self._loss = float(outputs['loss'])
        if done % self._every(total) and done != total:
            return
        eta = self.train_seconds / done * (total - done)
        self._show(
            f'{self.phase}: training iteration {done}/{total}, loss {self._loss:.3f}, '
            f'ETA {format_seconds(eta)}',
            last=done == total,
        )

    def _after_eval_iter(self, runner: Any, batch_idx: int, total: int) -> None:
        done = batch_idx + 1
        if not self.in_place and done != total:  # off a terminal: one line per evaluation
            return
        self._show(
            f'{self.phase}: evaluating held-out image {done}/{total} '
            f'(after iteration {runner.iter})',
            last=done == total,
        )

    def after_val_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._after_eval_iter(runner, batch_idx, len(runner.val_dataloader))

    def after_val_epoch(self, runner: Any, metrics: Optional[Dict[str, float]] = None) -> None:
        self.metrics = dict(metrics or {})
        shown = [
            f'{label} {factor * float(self.metrics[key]):.1f}'
            for key, (label, factor) in self.headline.items()
            if key in self.metrics
        ]
        if shown:
            self._show(
                f'{self.phase}: held-out after iteration {runner.iter}: ' + ', '.join(shown),
                last=True,
            )

    def after_test_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        self._after_eval_iter(runner, batch_idx, len(runner.test_dataloader))


@contextlib.contextmanager
def console_to(path: Path) -> Iterator[IO[str]]:
    """Send stdout and stderr (mmengine's console log, dataset and library prints,
    warnings) to ``path`` for the duration; ``sys.__stdout__`` stays the terminal.

    mmengine's logger keeps the stream it was created with, so a runner built
    inside is used inside too; the file stays open for loggers that outlive it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, 'a', buffering=1)  # noqa: SIM115 - loggers may outlive the block
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield log
