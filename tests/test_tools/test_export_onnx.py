"""tools/export_onnx.py writes a Semantic FPN file of free height and width that it verifies
itself at two sizes, and refuses bad output names."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

from mmeffformer.runtimes import build_backend
from tests.helpers.scripts import ROOT, load_script
from tests.helpers.tiny_configs import tiny_segmentor_config

export_tool = load_script(ROOT / 'tools' / 'export_onnx.py')


@pytest.mark.compat
def test_tool_exports_and_verifies_a_segmentor(tmp_path, capsys):
    out = tmp_path / 'semfpn.onnx'
    args = [str(tiny_segmentor_config(tmp_path)), str(out), '--part', 'model']
    status = export_tool.main(args + ['--shape', '96', '128', '--deploy', '--tolerance', '1e-4'])
    printed = capsys.readouterr().out
    assert status == 0, printed  # the tool's own check at the README's 1e-4
    checked = re.findall(
        r'input (\d+)x(\d+):\n  seg_logits: max abs diff \S+, relative to max \|output\| (\S+)',
        printed,
    )
    assert [(h, w) for h, w, _ in checked] == [('96', '128'), ('77', '141')], printed
    assert all(float(r) <= 1e-4 for _, _, r in checked), printed  # non-square, not x32 too
    graph = onnx.load(str(out)).graph
    dims = graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == ['seg_logits_height', 'seg_logits_width']
    (logits,) = build_backend('onnxruntime', str(out))(np.zeros((1, 3, 70, 90), np.float32))
    assert logits.shape == (1, 4, 70, 90)  # 4 classes at the input size


def test_tool_rejects_bad_output_name(tmp_path):
    with pytest.raises(SystemExit):
        export_tool.main([str(tiny_segmentor_config(tmp_path)), str(tmp_path / 'x.pt')])
