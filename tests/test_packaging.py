"""What `pip install` does: the pinned stack stays as it was, the wheel holds only
mmeffformer (with its configs for mim), the licence travels with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / 'requirements' / 'constraints'
STACK = os.environ.get('MMEFFFORMER_STACK')
# OpenMMLab's client (it pins an old setuptools, so it stays out of the stacks)
OPENMIM = '0.3.9'


def pins(stack: str) -> dict:
    """distribution -> version of a stack's constraints file."""
    lines = (CONSTRAINTS / f'{stack}.txt').read_text().splitlines()
    found = dict(line.split('==') for line in lines if '==' in line and not line.startswith('#'))
    return {name.strip(): version.strip() for name, version in found.items()}


def release(version: str) -> str:
    return version.split('+')[0]  # torch's local tag: 2.13.0+cpu


@pytest.mark.compat
@pytest.mark.skipif(STACK is None, reason='MMEFFFORMER_STACK names the stack (make test sets it)')
def test_installing_mmeffformer_kept_every_pin_of_the_stack():
    # the Makefile installed the stack, then mmeffformer with its dependencies (`pip install .`
    # except on the editable development stack): nothing of the stack may have moved
    for name, version in pins(STACK).items():
        assert release(metadata.version(name)) == version, name
    assert metadata.version('mmeffformer')


def test_every_stack_pins_torch_numpy_mmcv_and_opencv():
    for stack in ('current', 'classic', 'onedl'):
        pinned = pins(stack)
        assert {'torch', 'numpy', 'opencv-python'} <= set(pinned), stack
        assert 'mmcv' in pinned or 'onedl-mmcv' in pinned, stack
    assert pins('classic')['torch'] == '2.1.2' and pins('classic')['numpy'].startswith('1.26')


def test_wheel_installs_only_mmeffformer_and_mim_lists_the_model_zoo(tmp_path):
    """The built wheel, installed with its dependencies into a fresh environment beside
    OpenMMLab's own client: `mim search mmeffformer` lists every config of the zoo."""
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', str(ROOT), '--no-deps', '--no-build-isolation',
         '-q', '-w', str(tmp_path / 'dist')],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / 'dist').glob('mmeffformer-*.whl')
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top = {
            name.split('/')[0] for name in names if not name.split('/')[0].endswith('.dist-info')
        }
        info = next(n for n in names if n.endswith('.dist-info/METADATA'))
        requires = [line for line in archive.read(info).decode().splitlines()
                    if line.startswith('Requires-Dist:') and 'extra ==' not in line]  # fmt: skip
        licence = archive.read(info).decode()
        assert any(n.endswith('.dist-info/top_level.txt') for n in names)
        top_level = archive.read(next(n for n in names if n.endswith('top_level.txt'))).decode()
    assert top == {'mmeffformer'} and top_level.split() == ['mmeffformer']
    # only light packages: torch, numpy, opencv and the OpenMMLab packages are the user's
    assert requires == ['Requires-Dist: safetensors>=0.4.0']
    assert 'License: Apache License 2.0' in licence
    assert 'mmeffformer/.mim/configs/maskrcnn_effformer_l3_coco.py' in names

    env_dir = tmp_path / 'fresh'
    subprocess.run([sys.executable, '-m', 'venv', str(env_dir)], check=True)
    python = env_dir / 'bin' / 'python'
    install = subprocess.run(
        [str(python), '-m', 'pip', 'install', '-q', str(wheel), f'openmim=={OPENMIM}'],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    search = subprocess.run(
        [str(env_dir / 'bin' / 'mim'), 'search', 'mmeffformer'],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert search.returncode == 0, search.stdout[-2000:] + search.stderr[-2000:]
    listed = set(re.findall(r'^config id: (\S+)$', search.stdout, re.M))
    zoo = yaml.safe_load((ROOT / 'configs' / 'metafile.yml').read_text())['Models']
    assert listed == {model['Name'] for model in zoo}
    assert 'maskrcnn_effformer_l3_coco' in listed and 'semfpn_effformer_v2-s0_ade20k' in listed
