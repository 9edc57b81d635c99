"""Titled panels and training curves of the demo."""

from __future__ import annotations

import json

import cv2
import numpy as np

from mmeffformer.demo.figures import TITLE_HEIGHT, grid, read_scalars, titled, training_curves


def test_titled_puts_dark_text_on_a_white_bar_above_the_image():
    image = np.full((40, 120, 3), 7, np.uint8)
    panel = titled(image, 'ground truth')
    assert panel.shape == (40 + TITLE_HEIGHT, 120, 3)
    assert np.array_equal(panel[TITLE_HEIGHT:], image)
    bar = panel[:TITLE_HEIGHT]
    assert (bar < 100).any() and (bar == 255).mean() > 0.6  # text on white
    assert not (titled(image, '')[:TITLE_HEIGHT] < 255).any()
    long = titled(image, 'a title far wider than the forty-pixel-high image is')
    assert (long[:TITLE_HEIGHT, -4:] == 255).all()  # shrunk to fit, not cut off


def test_grid_lays_out_rows_with_gaps_on_white():
    a, b = np.zeros((10, 20, 3), np.uint8), np.zeros((10, 30, 3), np.uint8)
    canvas = grid([[a, b], [a]], gap=4)
    assert canvas.shape == (10 + 4 + 10, 20 + 4 + 30, 3)
    assert (canvas[:10, 20:24] == 255).all() and (canvas[10:14] == 255).all()
    assert (canvas[14:, 20:] == 255).all() and (canvas[14:, :20] == 0).all()


def write_scalars(path, records):
    path.write_text('\n'.join(json.dumps(r) for r in records) + '\n')


def test_read_scalars_groups_values_by_name_with_their_steps(tmp_path):
    path = tmp_path / 'scalars.json'
    write_scalars(
        path,
        [
            {'loss': 2.0, 'lr': 0.1, 'iter': 10, 'step': 10},
            {'loss': 1.0, 'lr': 0.05, 'iter': 20, 'step': 20},
            {'mIoU': 80.5, 'step': 20},
        ],
    )
    series = read_scalars(path)
    assert series['loss'] == [(10, 2.0), (20, 1.0)]
    assert series['mIoU'] == [(20, 80.5)]
    assert series['iter'] == [(10, 10.0), (20, 20.0)]


def test_training_curves_draw_one_column_per_phase(tmp_path):
    seg = {'loss': [(10, 1.0), (20, 0.5)], 'mIoU': [(10, 70.0), (20, 90.0)]}
    det = {'loss': [(10, 3.0), (20, 2.0)], 'box/bbox_mAP': [(20, 0.5)]}
    path = tmp_path / 'curves.png'
    training_curves(
        {'Semantic FPN': seg, 'Mask R-CNN': det},
        {'Semantic FPN': {'mIoU': (85.0, 1.0)}, 'Mask R-CNN': {'box/bbox_mAP': (45.0, 100.0)}},
        path,
    )
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[1] > picture.shape[0]  # two columns
    one = tmp_path / 'one.png'
    training_curves({'Semantic FPN': seg}, {'Semantic FPN': {'mIoU': (85.0, 1.0)}}, one)
    assert cv2.imread(str(one)).shape[1] < picture.shape[1]
