"""Deterministic synthetic scenes: shapes of several classes on cluttered backgrounds.

Each class has its own shape and colour family; sizes, positions, textures and
occlusion vary, and the background is noisy with distractor strokes, so a model
has to learn both colour and shape. Used by the demo; a COCO / ADE20K writer
builds on the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

#: (name, base BGR colour); label = index + 1, 0 is background.
CLASSES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ('disc', (40, 40, 220)),
    ('box', (40, 200, 40)),
    ('triangle', (220, 60, 40)),
)


@dataclass
class Scene:
    image: np.ndarray  # H x W x 3 uint8 (BGR)
    semantic: np.ndarray  # H x W uint8, 0 = background, k = CLASSES[k - 1]
    instances: List[Tuple[int, np.ndarray]]  # (label, H x W bool mask), visible parts


def _shape_mask(kind: int, size: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = size
    mask = np.zeros(size, np.uint8)
    radius = int(rng.integers(min(height, width) // 12, min(height, width) // 4))
    cy, cx = int(rng.integers(radius, height - radius)), int(rng.integers(radius, width - radius))
    if kind == 0:
        cv2.ellipse(
            mask,
            (cx, cy),
            (radius, int(radius * rng.uniform(0.6, 1.0))),
            float(rng.uniform(0, 180)),
            0,
            360,
            1,
            -1,
        )
    elif kind == 1:
        angle = float(rng.uniform(0, 90))
        box = cv2.boxPoints(((cx, cy), (2 * radius, 2 * radius * rng.uniform(0.5, 1.0)), angle))
        cv2.fillPoly(mask, [box.astype(np.int32)], 1)
    else:
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    return mask.astype(bool)


def make_scene(seed: int, size: Tuple[int, int] = (128, 128), max_objects: int = 5) -> Scene:
    """One scene; the same seed always gives the same scene."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = rng.integers(60, 196, (1, 1, 3)) + rng.normal(0, 25, (height, width, 3))
    for _ in range(int(rng.integers(3, 8))):  # distractor strokes in random colours
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(image, p1, p2, rng.integers(0, 255, 3).tolist(), int(rng.integers(1, 4)))
    semantic = np.zeros(size, np.uint8)
    owner = np.full(size, -1, np.int32)
    labels: List[int] = []
    for index in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(0, len(CLASSES)))
        mask = _shape_mask(kind, size, rng)
        colour = np.array(CLASSES[kind][1]) + rng.integers(-35, 36, 3)
        texture = rng.normal(0, 12, (height, width, 1)) * rng.uniform(0.3, 1.5)
        image[mask] = (colour + texture[mask]).clip(0, 255)
        semantic[mask] = kind + 1
        owner[mask] = index  # later objects occlude earlier ones
        labels.append(kind + 1)
    instances = [
        (label, owner == index) for index, label in enumerate(labels) if (owner == index).sum() > 8
    ]
    return Scene(image.clip(0, 255).astype(np.uint8), semantic, instances)


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _coco_annotations(scene: Scene, image_id: int, next_id: int) -> List[dict]:
    annotations = []
    for label, mask in scene.instances:
        polygons = _polygons(mask)
        if not polygons:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        annotations.append(
            dict(
                id=next_id + len(annotations),
                image_id=image_id,
                category_id=label,
                segmentation=polygons,
                area=float(mask.sum()),
                bbox=[x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                iscrowd=0,
            )
        )
    return annotations


def _ade_label(scene: Scene) -> np.ndarray:
    """ADE20K convention: 0 = ignore (a 1-px band on object borders), 1 = background,
    k + 1 = CLASSES[k - 1]; ``reduce_zero_label`` maps it to 0-based with 255 ignored."""
    label = scene.semantic.astype(np.uint8) + 1
    kernel = np.ones((3, 3), np.uint8)
    for _, mask in scene.instances:
        m = mask.astype(np.uint8)
        label[(cv2.dilate(m, kernel) - cv2.erode(m, kernel)) > 0] = 0
    return label


def write_dataset(
    root: str,
    num_train: int = 240,
    num_val: int = 60,
    size: Tuple[int, int] = (256, 256),
    seed: int = 0,
) -> dict:
    """Write the same scenes as a COCO instance set and an ADE20K-layout semantic set.

    Layout under ``root``: ``coco/{train2017,val2017}/*.jpg`` with
    ``coco/annotations/instances_{train,val}2017.json``, and
    ``ade/images/{training,validation}/*.jpg`` with
    ``ade/annotations/{training,validation}/*.png``. Returns the counts.
    """
    import json
    import os

    counts = {}
    categories = [
        dict(id=i + 1, name=name, supercategory='shape') for i, (name, _) in enumerate(CLASSES)
    ]
    splits = (
        ('train2017', 'training', num_train, seed * 100_003),
        ('val2017', 'validation', num_val, seed * 100_003 + 50_000),
    )
    for coco_split, ade_split, count, first_seed in splits:
        for folder in (
            f'coco/{coco_split}',
            'coco/annotations',
            f'ade/images/{ade_split}',
            f'ade/annotations/{ade_split}',
        ):
            os.makedirs(os.path.join(root, folder), exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            scene = make_scene(first_seed + index, size)
            name = f'{index:06d}'
            cv2.imwrite(os.path.join(root, 'coco', coco_split, f'{name}.jpg'), scene.image)
            cv2.imwrite(os.path.join(root, 'ade', 'images', ade_split, f'{name}.jpg'), scene.image)
            cv2.imwrite(
                os.path.join(root, 'ade', 'annotations', ade_split, f'{name}.png'),
                _ade_label(scene),
            )
            image_id = index + 1
            images.append(dict(id=image_id, file_name=f'{name}.jpg', height=size[0], width=size[1]))
            annotations += _coco_annotations(scene, image_id, len(annotations) + 1)
        coco = dict(images=images, annotations=annotations, categories=categories)
        with open(
            os.path.join(root, 'coco', 'annotations', f'instances_{coco_split}.json'), 'w'
        ) as f:
            json.dump(coco, f)
        counts[coco_split] = dict(images=len(images), instances=len(annotations))
    return counts
