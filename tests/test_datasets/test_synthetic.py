"""The synthetic scenes of the demo data are deterministic and labelled."""

from __future__ import annotations

import numpy as np

from mmeffformer.datasets.synthetic import make_scene


def test_scenes_are_deterministic_and_labelled():
    a, b = make_scene(5), make_scene(5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.semantic, b.semantic)
    assert not np.array_equal(a.image, make_scene(6).image)
    for label, mask in a.instances:
        assert np.all(a.semantic[mask] == label)  # visible parts carry the instance's class
