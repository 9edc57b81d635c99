"""The CPU model and its bf16 flags as the tools report them."""

from __future__ import annotations

from mmeffformer.utils.cpu_facts import cpu_has_native_bf16, cpu_info


def test_cpu_info_reports_the_model_and_bf16_flags():
    info = cpu_info()
    assert isinstance(info['model'], str) and info['model']
    with open('/proc/cpuinfo') as f:
        flags = next(line for line in f if line.startswith('flags')).split()
    assert cpu_has_native_bf16() == ('amx_bf16' in flags or 'avx512_bf16' in flags)
