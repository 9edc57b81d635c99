"""torch and the OpenMMLab packages are checked at import against the supported ranges."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmeffformer.supported_versions import (
    SUPPORTED,
    UnsupportedVersionError,
    check_supported_versions,
    installed_version,
    version_tuple,
)

pytestmark = pytest.mark.compat
ROOT = Path(__file__).resolve().parents[1]
GOOD = {'torch': '2.1.2', 'mmcv': '2.1.0', 'mmengine': '0.10.7', 'mmdet': '3.3.0', 'mmseg': '1.2.2'}


def test_version_tuple_reads_release_numbers():
    assert version_tuple('2.1.2+cu121') == (2, 1, 2)
    assert version_tuple('2.13.0+cpu') == (2, 13, 0)
    assert version_tuple('3.5.1rc1') == (3, 5, 1)
    assert version_tuple('2.10.0') > version_tuple('2.9.9')  # numbers, not strings
    with pytest.raises(ValueError, match="'dev'"):
        version_tuple('dev')


def test_the_tested_stacks_are_supported():
    check_supported_versions(GOOD)
    check_supported_versions(dict(GOOD, torch='2.13.0+cpu'))
    onedl = dict(torch='2.13.0', mmcv='2.3.6', mmengine='0.10.12', mmdet='3.5.1', mmseg='1.4.2')
    check_supported_versions(onedl)
    check_supported_versions(dict(GOOD, mmdet=None, mmseg=None))  # both are optional


@pytest.mark.parametrize(
    'module, version, shown',
    [
        ('mmcv', '2.0.1', 'mmcv 2.0.1 is installed; mmeffformer supports mmcv>=2.1.0,<2.4.0'),
        ('mmcv', '2.4.0', 'mmcv 2.4.0 is installed'),
        ('mmengine', '0.9.0', 'mmengine>=0.10.7,<0.11.0'),
        ('mmdet', '3.2.0', 'mmdet 3.2.0 is installed; mmeffformer supports mmdet>=3.3.0,<3.6.0'),
        ('mmseg', '1.1.0', 'mmsegmentation 1.1.0 is installed'),
        ('torch', '2.0.1', 'torch 2.0.1 is installed; mmeffformer supports torch>=2.1.0'),
    ],
)
def test_a_version_outside_its_range_names_version_range_and_fix(module, version, shown):
    with pytest.raises(UnsupportedVersionError) as caught:
        check_supported_versions(dict(GOOD, **{module: version}))
    message = str(caught.value)
    assert shown in message
    entry = next(e for e in SUPPORTED if e.module == module)
    assert f"install '{entry.distribution}{entry.specifier}'" in message
    if entry.fork:
        assert f"pip install '{entry.fork}{entry.specifier}'" in message
    assert message.count('\n- ') == 1  # only the one package is named


def test_a_missing_required_package_is_named_with_the_command_that_installs_it():
    with pytest.raises(UnsupportedVersionError) as caught:
        check_supported_versions(dict(GOOD, mmcv=None, mmengine='0.9.0'))
    message = str(caught.value)
    assert 'mmcv is not installed; mmeffformer needs mmcv>=2.1.0,<2.4.0: mim install' in message
    assert 'mmengine 0.9.0 is installed' in message  # every problem at once


def test_mminstall_txt_states_the_checked_ranges():
    lines = (ROOT / 'requirements' / 'mminstall.txt').read_text().splitlines()
    stated = {line for line in lines if line and not line.startswith('#')}
    assert stated == {f'{e.distribution}{e.specifier}' for e in SUPPORTED}


def test_installed_versions_are_read_for_either_distribution_name():
    import mmcv
    import mmengine
    import torch

    assert installed_version('mmcv') == mmcv.__version__  # mmcv or onedl-mmcv
    assert installed_version('mmengine') == mmengine.__version__
    assert version_tuple(installed_version('torch')) == version_tuple(torch.__version__)
    assert installed_version('no_such_module_here') is None


def test_import_stops_on_an_unsupported_mmdet(tmp_path):
    # an mmdet 3.2.0 first on the path, with its metadata, as pip would have installed it
    (tmp_path / 'mmdet').mkdir()
    (tmp_path / 'mmdet' / '__init__.py').write_text("__version__ = '3.2.0'\n")
    info = tmp_path / 'mmdet-3.2.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: mmdet\nVersion: 3.2.0\n')
    run = subprocess.run(
        [sys.executable, '-c', f'import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(ROOT)!r}]; '
         'import mmeffformer'],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1
    assert 'UnsupportedVersionError' in run.stderr
    assert re.search(r'mmdet 3\.2\.0 is installed; mmeffformer supports mmdet>=3\.3\.0,<3\.6\.0: '
                     r"pip install 'mmdet>=3\.3\.0,<3\.6\.0', or the OneDL fork", run.stderr)  # fmt: skip
