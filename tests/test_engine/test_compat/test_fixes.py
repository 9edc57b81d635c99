"""Each stack fix applies only where it is needed, logs one line the first time it takes
effect, and can be switched off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmeffformer.engine.compat import FIX_NAMES, checkpoints, disabled_fixes

pytestmark = pytest.mark.compat
ROOT = Path(__file__).resolve().parents[3]

# saves and loads a runner-style checkpoint twice, then reports which fixes are needed (as
# the stack is without them) and which are in place
SAVE_LOAD_TWICE = """
import sys, torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as ckpt
import mmeffformer
from mmeffformer.engine.compat import APPLIED, FIXES
path = sys.argv[1]
for _ in range(2):
    ckpt.save_checkpoint({'state_dict': {'w': torch.ones(2)}, 'hub': HistoryBuffer()}, path)
    try:
        ckpt.load_checkpoint(torch.nn.Module(), path, strict=False)
    except Exception as error:
        print('LOAD_ERROR', str(error).splitlines()[0])
from mmengine.config import Config
config = sys.argv[1] + '.py'
open(config, 'w').write("_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py']")
for _ in range(2):
    try:
        print('CONFIG', Config.fromfile(config).model.type)
    except Exception as error:
        print('CONFIG_ERROR', str(error).splitlines()[0])
from mmcv.ops.roi_align import RoIAlignFunction
print('APPLIED', sorted(APPLIED))
if not APPLIED:
    print('NEEDED', sorted(fix.name for fix in FIXES if fix.needed() is not None))
print('LOADER', type(ckpt.torch).__name__)
print('SAVER', getattr(ckpt.save_checkpoint, 'is_atomic', False))
print('ROIALIGN', getattr(RoIAlignFunction.forward, 'in_float32', False))
"""


def run_save_load(tmp_path: Path, disabled: str = '') -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != 'MMEFFFORMER_DISABLE_FIXES'}
    if disabled:
        env['MMEFFFORMER_DISABLE_FIXES'] = disabled
    return subprocess.run(
        [sys.executable, '-c', SAVE_LOAD_TWICE, str(tmp_path / 'a.pth')],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip


def fix_lines(output: str, name: str) -> list:
    return [line for line in output.splitlines() if f"mmeffformer fix '{name}' applies" in line]


def test_fixes_apply_where_needed_and_log_one_line_each_the_first_time_they_act(tmp_path):
    # what this stack needs, judged without any fix in place
    needed = run_save_load(tmp_path, disabled='all').stdout.split('NEEDED ')[1].splitlines()[0]
    assert "'atomic_checkpoint_saving', 'checkpoint_url_cache'" in needed  # every mmengine
    run = run_save_load(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f'APPLIED {needed}' in run.stdout
    assert 'LOAD_ERROR' not in run.stdout
    # saved twice through the atomic writer: one line; it names the switch
    (line,) = fix_lines(run.stdout, 'atomic_checkpoint_saving')
    assert 'MMEFFFORMER_DISABLE_FIXES=atomic_checkpoint_saving' in line
    trusted = 'trusted_checkpoint_loading' in needed
    assert len(fix_lines(run.stdout, 'trusted_checkpoint_loading')) == int(trusted)
    assert ('LOADER _TrustedLoadTorch' in run.stdout) == trusted
    assert ('ROIALIGN True' in run.stdout) == ('mmcv_ops_float32' in needed)
    assert not fix_lines(run.stdout, 'mmcv_ops_float32')  # in place, but no op ran
    # an mmseg:: base config loads on every stack; a line where a fork provides mmseg
    assert run.stdout.count('CONFIG EncoderDecoder') == 2
    fork = 'fork_config_packages' in needed
    assert len(fix_lines(run.stdout, 'fork_config_packages')) == int(fork)
    assert not fix_lines(run.stdout, 'checkpoint_url_cache')  # no URL was loaded


def test_all_fixes_switched_off_leave_the_stack_as_installed(tmp_path):
    run = run_save_load(tmp_path, disabled='all')
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'APPLIED []' in run.stdout and 'mmeffformer fix' not in run.stdout
    assert 'SAVER False' in run.stdout and 'ROIALIGN False' in run.stdout
    assert 'LOADER module' in run.stdout
    needed = run.stdout.split('NEEDED ')[1].splitlines()[0]
    # without the fixes, the failures they are for
    if 'trusted_checkpoint_loading' in needed:  # mmengine refuses its own checkpoint
        assert 'LOAD_ERROR Weights only load failed' in run.stdout
    else:
        assert 'LOAD_ERROR' not in run.stdout
    if 'fork_config_packages' in needed:  # mmengine does not find the fork's mmseg
        assert 'CONFIG_ERROR mmsegmentation is not installed' in run.stdout
    else:
        assert run.stdout.count('CONFIG EncoderDecoder') == 2


def test_one_fix_switched_off_leaves_the_others(tmp_path):
    run = run_save_load(tmp_path, disabled='atomic_checkpoint_saving, mmcv_ops_float32')
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'SAVER False' in run.stdout and 'ROIALIGN False' in run.stdout
    applied = run.stdout.split('APPLIED ')[1].splitlines()[0]
    assert "'checkpoint_url_cache'" in applied and 'atomic' not in applied


def test_disable_list_is_parsed_and_unknown_names_are_refused(monkeypatch):
    monkeypatch.setenv('MMEFFFORMER_DISABLE_FIXES', 'all')
    assert disabled_fixes() == frozenset(FIX_NAMES)
    monkeypatch.setenv('MMEFFFORMER_DISABLE_FIXES', ' checkpoint_url_cache ,')
    assert disabled_fixes() == {'checkpoint_url_cache'}
    monkeypatch.setenv('MMEFFFORMER_DISABLE_FIXES', 'atomic_saving')
    with pytest.raises(ValueError, match=r"unknown fixes \['atomic_saving'\]; accepted: "
                       r'trusted_checkpoint_loading, atomic_checkpoint_saving'):  # fmt: skip
        disabled_fixes()


def test_trusted_loading_is_needed_only_on_new_torch_with_an_mmengine_without_weights_only(
    monkeypatch,
):
    monkeypatch.setattr(checkpoints, 'torch_at_least', lambda version: True)
    monkeypatch.setattr(checkpoints, '_source_of', lambda module: 'torch.load(f)')
    assert 'weights_only=True by default' in checkpoints.trusted_loading_needed()
    monkeypatch.setattr(checkpoints, '_source_of', lambda module: 'torch.load(f, weights_only=x)')
    assert checkpoints.trusted_loading_needed() is None  # OneDL's mmengine
    monkeypatch.setattr(checkpoints, '_source_of', lambda module: 'torch.load(f)')
    monkeypatch.setattr(checkpoints, 'torch_at_least', lambda version: version != '2.6')
    assert checkpoints.trusted_loading_needed() is None  # torch < 2.6 loads everything
