"""tools/test.py evaluates a checkpoint converted from the authors' downstream layout."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

import torch
from mmengine.config import Config

from mmeffformer.datasets.synthetic import write_dataset
from tests.helpers.downstream import build_from_config
from tests.helpers.http_server import CheckpointServer, unused_port
from tests.helpers.scripts import run_tool
from tests.helpers.tiny_configs import tiny_demo_config
from tests.helpers.v1_reference import authors_v1_state, to_downstream_v1

ROOT = Path(__file__).resolve().parents[2]


def test_converted_authors_checkpoint_evaluates_with_coco_metric(tmp_path):
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=1, num_val=3, size=(128, 128))
    config = tiny_demo_config(tmp_path, data)
    cfg = Config.fromfile(str(config))
    detector = build_from_config(cfg, 'mmdet')
    # an mmdet 2.x file from the authors: backbone in their layout, heads as mmdet names them
    downstream = {
        k: v
        for k, v in to_downstream_v1(authors_v1_state('tiny'), 4).items()
        if not k.startswith('neck.')
    }
    downstream.update(
        {k: v for k, v in detector.state_dict().items() if not k.startswith('backbone.')}
    )
    source, converted = tmp_path / 'authors.pth', tmp_path / 'converted.pth'
    torch.save({'state_dict': downstream, 'meta': {}}, source)
    assert run_tool('convert_weights.py', source, converted).returncode == 0
    out = tmp_path / 'predictions.pkl'
    run = run_tool('test.py', str(config), str(converted), '--work-dir', str(tmp_path / 'work'),
         '--out', str(out), '--show-dir', str(tmp_path / 'shown'))  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log
    assert 'Iter(test) [3/3]' in log
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 3
    assert len(list((tmp_path / 'shown').rglob('*.jpg'))) == 3
    # strict load: the converted file covers the whole model, nothing missing
    state = torch.load(converted, weights_only=False)['state_dict']
    assert set(state) == set(detector.state_dict())


def test_missing_checkpoint_is_named(tmp_path):
    run = run_tool(
        'test.py',
        str(ROOT / 'configs' / 'maskrcnn_effformer_l1_coco.py'),
        str(tmp_path / 'nope.pth'),
    )
    assert run.returncode != 0 and 'Checkpoint file not found' in run.stderr


def test_deploy_flag_gives_the_same_predictions(tmp_path):
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=1, num_val=2, size=(128, 128))
    config = tiny_demo_config(tmp_path, data)
    detector = build_from_config(Config.fromfile(str(config)), 'mmdet')
    for bn in (m for m in detector.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_var.uniform_(0.5, 1.5)  # folding must use the real statistics
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': detector.state_dict(), 'meta': {}}, checkpoint)
    scores = {}
    for mode, extra in (('eval', []), ('deploy', ['--deploy'])):
        out = tmp_path / f'{mode}.pkl'
        run = run_tool(
            'test.py',
            str(config),
            str(checkpoint),
            '--work-dir',
            str(tmp_path / mode),
            '--out',
            str(out),
            *extra,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        deployed = 'deploy mode: 0 BatchNorm layers left' in run.stdout + run.stderr
        assert deployed == (mode == 'deploy')
        with open(out, 'rb') as f:
            results = pickle.load(f)
        scores[mode] = [torch.as_tensor(r['pred_instances']['scores']).sort()[0] for r in results]
    assert [len(s) for s in scores['eval']] == [len(s) for s in scores['deploy']]
    assert sum(len(s) for s in scores['eval']) > 0
    for a, b in zip(scores['eval'], scores['deploy']):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    printed = {}
    for name, extra in (('bf16', ['--deploy', '--deploy-dtype', 'bfloat16']), ('amp', ['--amp'])):
        run = run_tool(
            'test.py', str(config), str(checkpoint), '--work-dir', str(tmp_path / name), *extra
        )
        assert run.returncode == 0, run.stderr[-3000:]
        printed[name] = run.stdout + run.stderr
        # evaluated through mmcv's ops and CocoMetric (numpy has no bfloat16)
        assert 'coco/bbox_mAP' in printed[name]
    assert 'deploy mode, backbone dtype torch.bfloat16' in printed['bf16']


def test_checkpoint_url_is_downloaded_once_and_evaluated(tmp_path):
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=1, num_val=2, size=(128, 128))
    config = tiny_demo_config(tmp_path, data)
    detector = build_from_config(Config.fromfile(str(config)), 'mmdet')
    buffer = io.BytesIO()
    torch.save({'state_dict': detector.state_dict(), 'meta': {}}, buffer)
    payload = buffer.getvalue()
    name = f'/detector-{hashlib.sha256(payload).hexdigest()[:8]}.pth'
    env = dict(os.environ, MMEFFFORMER_CACHE=str(tmp_path / 'cache'))
    with CheckpointServer() as server:
        server.files[name] = payload
        run = run_tool(
            'test.py', str(config), server.url(name), '--work-dir', str(tmp_path / 'work'), env=env
        )
        assert server.requests[name] == 1
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'coco/bbox_mAP' in run.stdout + run.stderr
    assert (tmp_path / 'cache' / name.lstrip('/')).read_bytes() == payload


def test_unreachable_checkpoint_url_says_what_to_do(tmp_path):
    url = f'http://127.0.0.1:{unused_port()}/maskrcnn_l1-0123abcd.pth'
    config = ROOT / 'configs' / 'maskrcnn_effformer_l1_coco.py'
    run = run_tool('test.py', config, url, env=dict(os.environ, MMEFFFORMER_CACHE=str(tmp_path)))
    assert run.returncode != 0
    assert 'CheckpointDownloadError' in run.stderr and url in run.stderr
    assert str(tmp_path / 'maskrcnn_l1-0123abcd.pth') in run.stderr
