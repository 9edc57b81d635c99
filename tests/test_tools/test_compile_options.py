"""--compile in tools/train.py and tools/test.py: refused clearly where it cannot work."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.scripts import ROOT, TOOLS, run_tool

CONFIG = str(ROOT / 'configs' / 'semfpn_effformer_l1_ade20k.py')


def test_train_compile_without_a_cpp_compiler_fails_before_building_anything():
    # a process of its own: Inductor reads CXX when it is first imported
    run = subprocess.run(
        [sys.executable, str(TOOLS / 'train.py'), CONFIG, '--compile'],
        capture_output=True, text=True, env=dict(os.environ, CXX='no-such-c++-compiler'),
    )  # fmt: skip
    assert run.returncode != 0
    assert 'needs a C++ compiler' in run.stderr and 'no-such-c++-compiler' in run.stderr
    assert 'Dataset root' not in run.stderr  # refused before the data checks


def test_test_compile_needs_deploy(tmp_path):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    run = run_tool('test.py', CONFIG, checkpoint, '--compile')
    assert run.returncode != 0 and '--compile needs --deploy' in run.stderr
