"""Whole detectors exported with NMS and RoiAlign in the graph give mmdet's detections
in ONNX Runtime and OpenVINO, at sizes the file was not traced at; bad models are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmeffformer.export import DetectorGraph, UnsupportedModelError, export_onnx, read_metadata
from mmeffformer.runtimes import build_backend
from tests.helpers.downstream import build_from_config
from tests.helpers.exported import assert_same_detections, mmdet_predict, tiny_detector_config
from tests.helpers.tiny_models import randomise_batchnorm

pytestmark = pytest.mark.expensive
EXPORT_SIZE = (96, 128)
OTHER_SIZES = [(83, 117), (131, 96)]  # neither traced nor multiples of 32

DETECTORS = {
    # (config under configs/, backbone family, model overrides, test_cfg making random
    # heads detect)
    'mask-rcnn-v1': ('demo/maskrcnn_effformer_l1_synthetic.py', 'v1', '', {}),
    'mask-rcnn-v2': ('demo/maskrcnn_effformer_l1_synthetic.py', 'v2', '', {}),
    'cascade-v1': (
        'swap_in/cascade-mask-rcnn_effformer_v2-s2_coco.py',
        'v1',
        '',
        dict(rcnn=dict(score_thr=0.001, max_per_img=30)),
    ),
    'retinanet-v2': (
        'swap_in/retinanet_effformer_l1_coco.py',
        'v2',
        'bbox_head=dict(num_classes=3),',
        dict(score_thr=0.005, max_per_img=30),
    ),
}


def build_detector(tmp_path, name):
    base, family, extra, test_cfg = DETECTORS[name]
    cfg = Config.fromfile(str(tiny_detector_config(tmp_path, base, family, extra, **test_cfg)))
    torch.manual_seed(0)
    detector = build_from_config(cfg, 'mmdet').eval()
    randomise_batchnorm(detector)
    return detector


def graph_masks_pasted(detector, boxes, masks, height, width):
    """The graph's per-box mask probabilities pasted as mmdet pastes them."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    pasted, _ = _do_paste_mask(masks[:, None], boxes, height, width, skip_empty=False)
    return pasted >= detector.test_cfg.rcnn.mask_thr_binary


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            folder = tmp_path_factory.mktemp(name)
            detector = build_detector(folder, name)
            graph = DetectorGraph(detector).eval()
            path = str(folder / 'model.onnx')
            export_onnx(graph, path, EXPORT_SIZE)
            cache[name] = (detector, graph, path)
        return cache[name]

    return get


@pytest.mark.parametrize('name', sorted(DETECTORS))
def test_graph_in_pytorch_is_mmdets_inference(exported, name):
    detector, graph, _ = exported(name)
    for seed, size in enumerate([EXPORT_SIZE] + OTHER_SIZES):
        image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
        want = mmdet_predict(detector, image)
        with torch.no_grad():
            got = graph(image)
        reference = [want.bboxes, want.scores, want.labels]
        assert_same_detections(reference, [g.numpy() for g in got[:3]], 1e-3, 1e-6)
        if graph.with_mask:  # same pixels once pasted, as mmdet pastes them
            pasted = graph_masks_pasted(detector, got[0], got[3], *size)
            assert pasted.shape == want.masks.shape
            assert (pasted != want.masks).float().mean() < 1e-4


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
@pytest.mark.parametrize('name', sorted(DETECTORS))
def test_exported_file_gives_mmdets_detections_at_any_size(exported, name, backend):
    detector, graph, path = exported(name)
    runtime = build_backend(backend, path, precision='fp32')
    for seed, size in enumerate(OTHER_SIZES, start=1):
        image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
        want = mmdet_predict(detector, image)
        got = runtime(image.numpy())
        assert got[2].dtype == np.int64
        reference = [want.bboxes, want.scores, want.labels]
        assert_same_detections(reference, got[:3], 2e-2, 1e-4)
        if graph.with_mask:
            with torch.no_grad():
                masks = graph(image)[3].numpy()
            assert_same_detections(reference + [masks], got, 2e-2, 1e-4, mask_tol=1e-3)


def test_file_records_what_it_holds(exported):
    _, _, path = exported('mask-rcnn-v1')
    meta = read_metadata(path)
    assert meta['task'] == 'detection' and meta['model'] == 'MaskRCNN'
    assert meta['classes'] == '3' and meta['masks'] == 'True'
    assert meta['backbone'] == 'EfficientFormer widths [8, 16, 24, 32]'


def test_no_detection_is_an_empty_result(exported):
    detector, graph, path = exported('mask-rcnn-v1')
    runtime = build_backend('onnxruntime', path)
    # a file exported with a score threshold no softmax reaches
    detector.test_cfg.rcnn.score_thr = 1.0
    try:
        empty = DetectorGraph(detector).eval()
        export_onnx(empty, path.replace('model', 'empty'), EXPORT_SIZE)
    finally:
        detector.test_cfg.rcnn.score_thr = 0.05
    runtime = build_backend('onnxruntime', path.replace('model', 'empty'))
    boxes, scores, labels, masks = runtime(np.zeros((1, 3, 70, 90), np.float32))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
    assert masks.shape[0] == 0


def test_unsupported_parts_are_named_with_what_is_supported(tmp_path):
    with pytest.raises(UnsupportedModelError, match="detector 'Identity'.*MaskRCNN"):
        DetectorGraph(torch.nn.Identity())
    detector = build_detector(tmp_path, 'mask-rcnn-v1')
    detector.test_cfg.rcnn.nms = dict(type='soft_nms', iou_threshold=0.5)
    with pytest.raises(UnsupportedModelError, match="NMS type 'soft_nms'; supported: 'nms'"):
        DetectorGraph(detector)


def test_detector_file_takes_one_image(exported):
    _, graph, path = exported('mask-rcnn-v1')
    with pytest.raises(ValueError, match='one image'):
        export_onnx(graph, path, EXPORT_SIZE, dynamic_batch=True)
