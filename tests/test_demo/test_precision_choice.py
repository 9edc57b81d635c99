"""How the demo picks its precision, and the measurement it picks by."""

from __future__ import annotations

import json

import pytest
from mmengine.config import Config

from mmeffformer.datasets.synthetic import write_dataset
from mmeffformer.demo import precision_choice
from mmeffformer.demo.precision_choice import choose_precision, training_step_seconds
from tests.helpers.tiny_configs import tiny_demo_config


def never(*_):
    raise AssertionError('measured although it should not')


def test_an_explicit_precision_is_used_without_measuring(tmp_path):
    for name in ('float32', 'bfloat16'):
        assert choose_precision(name, never, tmp_path / 'c.json') == (
            name,
            'chosen with --precision',
        )
    with pytest.raises(ValueError, match="one of .*'auto'.*got 'fp16'"):
        choose_precision('fp16', never, tmp_path / 'c.json')


def test_without_native_bf16_auto_is_float32_without_measuring(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_choice, 'cpu_has_native_bf16', lambda: False)
    chosen, why = choose_precision('auto', never, tmp_path / 'c.json')
    assert chosen == 'float32' and 'no native bf16' in why
    assert not (tmp_path / 'c.json').exists()


@pytest.mark.parametrize('seconds, faster', [((2.0, 1.5), 'bfloat16'), ((1.4, 2.1), 'float32')])
def test_auto_takes_the_faster_measured_and_remembers_it(tmp_path, monkeypatch, seconds, faster):
    monkeypatch.setattr(precision_choice, 'cpu_has_native_bf16', lambda: True)
    calls = []

    def measure():
        calls.append(1)
        return dict(zip(('float32', 'bfloat16'), seconds))

    cache = tmp_path / 'probe' / 'c.json'
    chosen, why = choose_precision('auto', measure, cache)
    assert chosen == faster and len(calls) == 1
    assert f'float32 {seconds[0]:.2f} s, bfloat16 {seconds[1]:.2f} s' in why
    assert choose_precision('auto', measure, cache) == (chosen, why) and len(calls) == 1
    (entry,) = json.loads(cache.read_text()).values()
    assert entry == dict(zip(('float32', 'bfloat16'), seconds))


def test_training_step_seconds_times_a_real_step_in_both_precisions(tmp_path):
    data = tmp_path / 'data'
    write_dataset(str(data), num_train=2, num_val=1, size=(96, 96))
    cfg = Config.fromfile(str(tiny_demo_config(tmp_path, data)))
    cfg.train_dataloader.dataset.data_root = f'{data}/coco/'
    cfg.train_dataloader.batch_size = 2
    seconds = training_step_seconds(cfg, repeats=1)
    assert set(seconds) == {'float32', 'bfloat16'}
    assert all(0 < value < 60 for value in seconds.values())
