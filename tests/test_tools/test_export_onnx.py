"""tools/export_onnx.py writes a Semantic FPN file that it verifies itself, and refuses bad output names."""

from __future__ import annotations

import re

import onnx
import pytest

from tests.helpers.scripts import ROOT, load_script
from tests.helpers.tiny_configs import tiny_segmentor_config

export_tool = load_script(ROOT / 'tools' / 'export_onnx.py')


def test_tool_exports_and_verifies_a_segmentor(tmp_path, capsys):
    out = tmp_path / 'semfpn.onnx'
    args = [str(tiny_segmentor_config(tmp_path)), str(out), '--part', 'model']
    status = export_tool.main(args + ['--shape', '96', '128', '--deploy', '--tolerance', '1e-4'])
    printed = capsys.readouterr().out
    assert status == 0, printed  # the tool's own check at the README's 1e-4
    relative = re.search(r'seg_logits: max abs diff \S+, relative to max \|output\| (\S+)', printed)
    assert relative and float(relative[1]) <= 1e-4, printed
    graph = onnx.load(str(out)).graph
    dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 4, 96, 128]  # 4 classes, logits resized to the input


def test_tool_rejects_bad_output_name(tmp_path):
    with pytest.raises(SystemExit):
        export_tool.main([str(tiny_segmentor_config(tmp_path)), str(tmp_path / 'x.pt')])
