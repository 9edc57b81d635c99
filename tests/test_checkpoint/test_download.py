"""Checkpoints by URL, served from 127.0.0.1: download, cache, verification, errors, locking."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader
from safetensors.torch import save as safetensors_bytes

from mmeffformer.checkpoint import (
    CheckpointDownloadError,
    cache_dir,
    cached_path,
    download_checkpoint,
)
from mmeffformer.models import EfficientFormer, EfficientFormerV2
from tests.helpers.http_server import CheckpointServer, unused_port
from tests.helpers.v1_reference import (
    ARCHS,
    authors_to_mmpretrain_v1,
    authors_to_timm_v1,
    authors_v1_state,
    reference_v1_features,
)
from tests.helpers.v2_reference import arch_dict, authors_to_timm_v2, authors_v2_state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / 'cache'
    monkeypatch.setenv('MMEFFFORMER_CACHE', str(folder))
    return folder


@pytest.fixture
def server():
    with CheckpointServer() as running:
        yield running


def v1_tiny(**kwargs) -> EfficientFormer:
    widths, depths, num_attention = ARCHS['tiny']
    return EfficientFormer(
        dict(widths=widths, depths=depths, num_attention=num_attention), norm_out=False, **kwargs
    )


def pickled(contents) -> bytes:
    buffer = io.BytesIO()
    torch.save(contents, buffer)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_name(stem: str, data: bytes, ext: str = 'pth') -> str:
    """mmpretrain's naming: the file name ends in the first 8 digits of its sha256."""
    return f'{stem}-{sha256(data)[:8]}.{ext}'


def layout_files():
    """(layout, URL path, file bytes, model factory) in each published layout."""
    v1 = authors_v1_state('tiny', seed=4)
    v2 = authors_v2_state('tiny', seed=5)
    mmpretrain = pickled({'state_dict': authors_to_mmpretrain_v1(v1), 'meta': {}})
    timm_v1 = safetensors_bytes({k: v.contiguous() for k, v in authors_to_timm_v1(v1).items()})
    timm_v2 = safetensors_bytes({k: v.contiguous() for k, v in authors_to_timm_v2(v2).items()})
    authors = pickled({'model': v1})
    return [
        (
            'mmpretrain .pth',
            '/mmclassification/v0/efficientformer/'
            + hashed_name('efficientformer-tiny_3rdparty_in1k_20220915', mmpretrain),
            mmpretrain,
            v1_tiny,
        ),
        (
            'timm V1 .safetensors',
            '/timm/efficientformer_tiny.snap_dist_in1k/resolve/main/model.safetensors',
            timm_v1,
            v1_tiny,
        ),
        (
            'timm V2 .safetensors',
            '/timm/efficientformerv2_tiny.snap_dist_in1k/resolve/main/model.safetensors',
            timm_v2,
            lambda **kw: EfficientFormerV2(arch_dict('tiny'), **kw),
        ),
        ('authors .pth', '/weights/efficientformer_tiny_300d.pth', authors, v1_tiny),
    ]


@pytest.mark.parametrize('layout', [row[0] for row in layout_files()])
def test_url_downloads_once_and_loads_as_the_local_file(server, cache, tmp_path, layout, capfd):
    _, path, data, build = next(row for row in layout_files() if row[0] == layout)
    server.files[path] = data
    url = server.url(path)
    local = tmp_path / Path(path).name
    local.write_bytes(data)

    from_url = build(init_cfg=dict(type='Pretrained', checkpoint=url))
    from_url.init_weights()
    assert f'Downloading {url}' in capfd.readouterr().err  # the progress report
    from_file = build(init_cfg=dict(type='Pretrained', checkpoint=str(local)))
    from_file.init_weights()
    fresh = build()
    fresh.init_weights()
    assert cached_path(url).read_bytes() == data
    ours, reference = from_url.state_dict(), from_file.state_dict()
    assert ours.keys() == reference.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], reference[key], rtol=0, atol=0, msg=key)
    assert any(not torch.equal(ours[k], fresh.state_dict()[k]) for k in ours)  # it did load

    again = build(init_cfg=dict(type='Pretrained', checkpoint=url))
    again.init_weights()  # a cache hit
    assert server.requests[path] == 1
    assert 'Downloading' not in capfd.readouterr().err


def test_downloaded_mmpretrain_file_reproduces_the_reference(server):
    state = authors_v1_state('tiny', seed=6)
    data = pickled({'state_dict': authors_to_mmpretrain_v1(state)})
    path = '/' + hashed_name('efficientformer-tiny', data)
    server.files[path] = data
    model = v1_tiny(init_cfg=dict(type='Pretrained', checkpoint=server.url(path)))
    model.init_weights()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        for got, want in zip(model.eval()(x), reference_v1_features(state, 'tiny', x)):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_hash_named_files_are_cached_under_their_name_others_under_host_and_path(tmp_path):
    hashed = 'https://download.openmmlab.com/a/efficientformer-l1_in1k_20220915-cc3e1ac6.pth'
    assert (
        cached_path(hashed, tmp_path) == tmp_path / 'efficientformer-l1_in1k_20220915-cc3e1ac6.pth'
    )
    hub = 'https://huggingface.co/timm/efficientformerv2_s0.snap_dist_in1k/resolve/main/model.safetensors'
    assert cached_path(hub, tmp_path) == tmp_path.joinpath(
        'huggingface.co', 'timm', 'efficientformerv2_s0.snap_dist_in1k', 'resolve', 'main',
        'model.safetensors',
    )  # fmt: skip
    with pytest.raises(ValueError, match='does not name a file'):
        cached_path('https://example.com/', tmp_path)


def test_cache_folder_follows_torch_home_unless_overridden(tmp_path, monkeypatch):
    monkeypatch.delenv('MMEFFFORMER_CACHE')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    assert cache_dir() == tmp_path / 'torch' / 'hub' / 'checkpoints'
    monkeypatch.setenv('MMEFFFORMER_CACHE', str(tmp_path / 'mine'))
    assert cache_dir() == tmp_path / 'mine'


def test_wrong_hash_prefix_is_refused_and_nothing_is_cached(server, cache):
    data = pickled({'state_dict': authors_to_mmpretrain_v1(authors_v1_state('tiny'))})
    wrong = '0123abcd' if not sha256(data).startswith('0123abcd') else 'abcd0123'
    path = f'/efficientformer-tiny-{wrong}.pth'
    server.files[path] = data
    model = v1_tiny(init_cfg=dict(type='Pretrained', checkpoint=server.url(path)))
    with pytest.raises(CheckpointDownloadError) as error:
        model.init_weights()
    message = str(error.value)
    assert sha256(data) in message and wrong in message and server.url(path) in message
    assert 'refused and removed' in message
    assert list(cache.rglob('*.pth')) == [] and list(cache.rglob('*.partial')) == []


def test_a_corrupted_cache_file_is_replaced_by_a_fresh_download(server, cache):
    data = pickled({'state_dict': authors_to_mmpretrain_v1(authors_v1_state('tiny'))})
    path = '/' + hashed_name('efficientformer-tiny', data)
    server.files[path] = data
    target = cached_path(server.url(path))
    target.parent.mkdir(parents=True)
    target.write_bytes(data[: len(data) // 2])  # say, a copy that was cut short
    assert download_checkpoint(server.url(path), progress=False) == target
    assert target.read_bytes() == data and server.requests[path] == 1


def test_interrupted_transfer_leaves_nothing_in_the_cache(server, cache):
    data = pickled({'model': authors_v1_state('tiny')})
    path = '/weights/efficientformer_tiny_300d.pth'
    server.files[path] = data
    server.truncate.add(path)
    model = v1_tiny(init_cfg=dict(type='Pretrained', checkpoint=server.url(path)))
    with pytest.raises(CheckpointDownloadError, match='interrupted') as error:
        model.init_weights()
    assert server.url(path) in str(error.value) and str(cached_path(server.url(path))) in str(
        error.value
    )
    assert [p for p in cache.rglob('*') if p.is_file() and not p.name.endswith('.lock')] == []
    server.truncate.clear()  # the next attempt downloads the whole file
    model.init_weights()
    assert cached_path(server.url(path)).read_bytes() == data


def test_unreachable_server_names_the_url_the_cache_path_and_a_local_copy(cache):
    url = f'http://127.0.0.1:{unused_port()}/efficientformer-l3_3rdparty_in1k_20220915-466793d6.pth'
    model = v1_tiny(init_cfg=dict(type='Pretrained', checkpoint=url))
    with pytest.raises(CheckpointDownloadError) as error:
        model.init_weights()
    message = str(error.value)
    assert url in message and 'Connection refused' in message
    assert str(cache / 'efficientformer-l3_3rdparty_in1k_20220915-466793d6.pth') in message
    assert '--cfg-options model.backbone.init_cfg.checkpoint=/path/to/' in message
    assert 'MMEFFFORMER_CACHE' in message
    assert list(cache.rglob('*.pth')) == []


def test_http_error_names_the_status(server):
    url = server.url('/missing/efficientformer_l1_300d.pth')
    with pytest.raises(CheckpointDownloadError, match='HTTP 404'):
        download_checkpoint(url, progress=False)


def test_load_from_url_goes_through_the_cache(server):
    """mmengine's loader (load_from, tools/test.py with a URL) uses the same cache."""
    state = {'state_dict': {'weight': torch.arange(6.0)}, 'meta': {'epoch': 3}}
    data = pickled(state)
    path = '/' + hashed_name('whole_model', data)
    server.files[path] = data
    for _ in range(2):
        loaded = CheckpointLoader.load_checkpoint(server.url(path), map_location='cpu')
        torch.testing.assert_close(loaded['state_dict']['weight'], torch.arange(6.0))
    assert server.requests[path] == 1


FETCH = """
import sys
from mmeffformer.checkpoint import download_checkpoint
print('calling', flush=True)
print(download_checkpoint(sys.argv[1], progress=False), flush=True)
"""


def test_two_processes_starting_at_once_download_once(server, cache):
    data = pickled({'model': authors_v1_state('tiny')})
    path = '/' + hashed_name('efficientformer-tiny', data)
    server.files[path] = data
    server.hold = True  # each body stops halfway until released
    env = dict(os.environ, MMEFFFORMER_CACHE=str(cache))
    processes = [
        subprocess.Popen(
            [sys.executable, '-c', FETCH, server.url(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == 'calling'
        time.sleep(1.0)  # both are inside download_checkpoint: one transfers, one waits
        server.release()
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(cached_path(server.url(path)))}
    assert server.requests[path] == 1
    assert cached_path(server.url(path)).read_bytes() == data
