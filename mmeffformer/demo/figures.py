"""The demo's pictures: titled prediction panels and training curves from scalars.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

TITLE_HEIGHT = 22


def titled(image: np.ndarray, title: str) -> np.ndarray:
    """``image`` (H x W x 3, BGR) with a white title bar above it."""
    bar = np.full((TITLE_HEIGHT, image.shape[1], 3), 255, np.uint8)
    scale = 0.45
    width = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    if width > image.shape[1] - 8:  # shrink to fit narrow panels
        scale *= (image.shape[1] - 8) / width
    cv2.putText(bar, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], 0)


def grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Panels (same height within a row) laid out row by row on a white canvas."""
    lines = []
    for row in rows:
        spaced: List[np.ndarray] = []
        for panel in row:
            if spaced:
                spaced.append(np.full((panel.shape[0], gap, 3), 255, np.uint8))
            spaced.append(panel)
        lines.append(np.concatenate(spaced, 1))
    width = max(line.shape[1] for line in lines)
    padded = []
    for line in lines:
        pad = np.full((line.shape[0], width - line.shape[1], 3), 255, np.uint8)
        padded += [np.concatenate([line, pad], 1), np.full((gap, width, 3), 255, np.uint8)]
    return np.concatenate(padded[:-1], 0)


def read_scalars(path: Path) -> Dict[str, List[tuple]]:
    """mmengine's ``vis_data/scalars.json`` as ``{name: [(step, value), ...]}``."""
    series: Dict[str, List[tuple]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        step = record.pop('step')
        for name, value in record.items():
            if isinstance(value, (int, float)):
                series.setdefault(name, []).append((step, float(value)))
    return series


def training_curves(
    phases: Dict[str, Dict[str, List[tuple]]],
    held_out: Dict[str, Dict[str, Tuple[float, float]]],
    path: Path,
) -> None:
    """One column per phase: training loss on top, held-out metrics below.

    Args:
        phases: phase title -> its scalars (:func:`read_scalars`).
        held_out: phase title -> {scalar name: (target in percent, scale to percent)},
            the held-out metrics to draw below.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(phases), figsize=(5 * len(phases), 6.5), squeeze=False)
    for column, (title, series) in enumerate(phases.items()):
        loss = series.get('loss', [])
        top, bottom = axes[0][column], axes[1][column]
        top.plot(*zip(*loss) if loss else ([], []), color='tab:blue')
        top.set(title=f'{title}: training loss', xlabel='iteration', ylabel='loss', yscale='log')
        for (name, (target, scale)), colour in zip(
            held_out[title].items(), ('tab:green', 'tab:red')
        ):
            points = series.get(name, [])
            steps = [s for s, _ in points]
            bottom.plot(steps, [v * scale for _, v in points], 'o-', color=colour, label=name)
            bottom.axhline(target, color=colour, linestyle='--', linewidth=0.8)
        bottom.set(
            title=f'{title}: held-out metrics (dashed: targets)',
            xlabel='iteration',
            ylabel='percent',
            xlim=top.get_xlim(),
        )
        bottom.legend(loc='lower right')
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
