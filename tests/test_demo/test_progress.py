"""The demo's progress line and console redirection."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

from mmeffformer.demo import progress
from mmeffformer.demo.progress import ProgressHook, console_to, format_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.4, 75.4, 600)] == ['0:00', '0:59', '1:15', '10:00']


def test_off_a_terminal_a_line_every_tenth_with_an_eta_from_training_time_only(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, 'perf_counter', clock)
    stream = io.StringIO()
    headline = {'box/bbox_mAP': ('box AP', 100.0), 'mIoU': ('mIoU', 1.0)}
    hook = ProgressHook('[2/2] Mask R-CNN', headline, stream=stream)
    assert not hook.in_place
    runner = SimpleNamespace(iter=0, max_iters=20, val_dataloader=[None] * 3)
    for index in range(20):
        runner.iter = index
        hook.before_train_iter(runner, index)
        clock.now += 2.0  # every iteration takes 2 s ...
        hook.after_train_iter(runner, index, outputs={'loss': 1.0 / (index + 1)})
        clock.now += 100.0  # ... and time between iterations (evaluation) is not counted
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10  # iterations 2, 4, ..., 20
    assert lines[0] == '[2/2] Mask R-CNN: training iteration 2/20, loss 0.500, ETA 0:36'
    assert lines[4] == '[2/2] Mask R-CNN: training iteration 10/20, loss 0.100, ETA 0:20'
    assert lines[-1].endswith('iteration 20/20, loss 0.050, ETA 0:00')
    stream.truncate(0), stream.seek(0)
    for index in range(3):
        hook.after_val_iter(runner, index)
    hook.after_val_epoch(runner, {'box/bbox_mAP': 0.4567, 'other': 1.0})
    assert stream.getvalue().splitlines() == [  # one line per evaluation, then its headline
        '[2/2] Mask R-CNN: evaluating held-out image 3/3 (after iteration 19)',
        '[2/2] Mask R-CNN: held-out after iteration 19: box AP 45.7',
    ]
    assert hook.metrics == {'box/bbox_mAP': 0.4567, 'other': 1.0}


def test_on_a_terminal_the_line_is_rewritten_in_place():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    hook = ProgressHook('phase', stream=stream)
    runner = SimpleNamespace(iter=0, max_iters=3)
    for index in range(3):
        runner.iter = index
        hook.before_train_iter(runner, index)
        hook.after_train_iter(runner, index, outputs={'loss': 2.0})
    text = stream.getvalue()
    assert text.count('\r') == 3 and text.count('\n') == 1 and text.endswith('\n')


def test_console_to_sends_prints_to_the_file_and_keeps_the_terminal(tmp_path, capsys):
    with console_to(tmp_path / 'logs' / 'console.log') as log:
        print('library chatter')
        print('warning text', file=sys.stderr)
        assert sys.__stdout__ is not sys.stdout
    log.flush()
    print('after')
    assert (tmp_path / 'logs' / 'console.log').read_text() == 'library chatter\nwarning text\n'
    assert capsys.readouterr().out == 'after\n'
