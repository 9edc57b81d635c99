"""Install mmeffformer; configs and tools travel inside the package (.mim)."""

import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    namespace: dict = {}
    exec((HERE / 'mmeffformer' / 'version.py').read_text(), namespace)
    return namespace['__version__']


def read_requirements(name: str) -> list:
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def copy_mim_files() -> None:
    """Copy configs/ (with its metafile), tools/ and model-index.yml into
    mmeffformer/.mim so `mim` finds them."""
    mim = HERE / 'mmeffformer' / '.mim'
    mim.mkdir(exist_ok=True)
    shutil.copyfile(HERE / 'model-index.yml', mim / 'model-index.yml')
    for name in ('configs', 'tools'):
        target = mim / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        if (HERE / name).is_dir():
            shutil.copytree(HERE / name, target)


if os.environ.get('MMEFFFORMER_SKIP_MIM') != '1':
    copy_mim_files()

setup(
    name='mmeffformer',
    version=read_version(),
    description='EfficientFormer / EfficientFormerV2 backbones for mmdet 3 and mmseg 1',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.8',
    # only mmeffformer at the top level: mim reads the first name of top_level.txt
    packages=find_packages(include=('mmeffformer', 'mmeffformer.*')),
    include_package_data=True,
    package_data={
        'mmeffformer': [
            '.mim/model-index.yml',
            '.mim/configs/**/*.py',
            '.mim/configs/*.yml',
            '.mim/tools/**/*',
        ]
    },
    # only light packages: torch and the OpenMMLab packages are the user's, checked at import
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'mim': read_requirements('mminstall.txt'),
        'tests': read_requirements('tests.txt')
        + read_requirements('export.txt')
        + read_requirements('deploy.txt'),
        'export': read_requirements('export.txt'),
        # the runtimes: ONNX Runtime (in export.txt) and OpenVINO
        'deploy': read_requirements('export.txt') + read_requirements('deploy.txt'),
        # INT8 (tools/quantize.py): the runtimes and NNCF
        'quantize': read_requirements('export.txt')
        + read_requirements('deploy.txt')
        + read_requirements('quantize.txt'),
        # ExecuTorch programs for phones (tools/export_executorch.py) and their runtime
        'mobile': read_requirements('mobile.txt'),
    },
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
    ],
    zip_safe=False,
)
