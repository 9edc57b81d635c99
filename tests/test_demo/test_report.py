"""The demo's verdict table and report.md."""

from __future__ import annotations

from mmeffformer.demo.report import TARGETS, DemoResult, report_markdown, summary_table


def result(**metrics: float) -> DemoResult:
    values = {'box AP': 50.0, 'mask AP': 50.0, 'mIoU': 90.0, 'box AP50': 80.0}
    values.update(metrics)
    return DemoResult(
        seed=3,
        precision='float32',
        precision_reason='chosen with --precision',
        machine=dict(cpu='Test CPU 9000', threads='2', bf16='not native', torch='2.13.0'),
        metrics=values,
        per_class={
            'box AP': {'disc': 51.0, 'box': 49.5},
            'IoU': {'background': 99.0, 'disc': 88.25},
        },
        seconds={'Semantic FPN': 60.0, 'Mask R-CNN': 200.4},
        iterations={'Semantic FPN': 100, 'Mask R-CNN': 150},
        pictures=['training_curves.png'],
    )


def test_a_target_is_met_at_its_value_and_missed_just_below():
    assert TARGETS == {'box AP': 45.0, 'mask AP': 45.0, 'mIoU': 85.0}
    verdicts = {name: met for name, _, _, met in result(**{'box AP': 45.0}).verdicts()}
    assert verdicts == {'box AP': True, 'mask AP': True, 'mIoU': True}
    missed = result(**{'mask AP': 44.99})
    assert [met for *_, met in missed.verdicts()] == [True, False, True]
    assert not missed.all_met and result().all_met


def test_summary_table_rows_say_value_target_and_verdict():
    lines = summary_table(result(mIoU=84.0)).splitlines()
    assert lines[0].split() == ['metric', 'value', 'target', 'met?']
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert rows == {
        'box': ['AP', '50.0', '45.0', 'yes'],
        'mask': ['AP', '50.0', '45.0', 'yes'],
        'mIoU': ['84.0', '85.0', 'NO'],
    }
    assert lines[-1] == 'float32, seed 3, 260 s on Test CPU 9000'


def test_report_names_machine_precision_times_and_per_class_results():
    text = report_markdown(result())
    assert 'Test CPU 9000, 2 threads; bf16: not native' in text
    assert '**float32** (chosen with --precision)' in text
    assert '| Mask R-CNN | 200 |' in text and '| **whole demo** | **260** |' in text
    # one row per class, '-' where a metric has no value for it
    assert '| class | box AP | IoU |' in text
    assert '| background | - | 99.0 |' in text
    assert '| disc | 51.0 | 88.2 |' in text
    assert '| box | 49.5 | - |' in text
    assert 'box AP50 80.0' in text and '![training_curves.png](training_curves.png)' in text
