"""The demo's verdict: metrics against targets, on the terminal and in ``report.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

#: Held-out quality the demo must reach on every seed (percent).
TARGETS: Dict[str, float] = {'box AP': 45.0, 'mask AP': 45.0, 'mIoU': 85.0}


@dataclass
class DemoResult:
    """What one demo run measured; times in seconds, metrics in percent."""

    seed: int
    precision: str
    precision_reason: str
    machine: Dict[str, str]
    metrics: Dict[str, float]
    per_class: Dict[str, Dict[str, float]]  # metric name -> class -> value
    seconds: Dict[str, float]  # phase -> seconds, in order
    iterations: Dict[str, int]
    pictures: List[str] = field(default_factory=list)
    #: the trained models in PyTorch and in each runtime: model, backend, precision,
    #: metrics (name -> percent), ms_per_image
    deployment: List[dict] = field(default_factory=list)

    def verdicts(self) -> List[tuple]:
        """``(metric, value, target, met)`` for every target."""
        return [
            (name, self.metrics[name], target, self.metrics[name] >= target)
            for name, target in TARGETS.items()
        ]

    @property
    def all_met(self) -> bool:
        return all(met for *_, met in self.verdicts())


DEPLOYMENT_METRICS = ('box AP', 'mask AP', 'mIoU')


def deployment_rows(result: DemoResult) -> List[List[str]]:
    """model, backend, precision, each metric ('-' where the model has none), ms / image."""
    return [
        [row['model'], row['backend'], row['precision']]
        + [f'{row["metrics"][m]:.1f}' if m in row['metrics'] else '-' for m in DEPLOYMENT_METRICS]
        + [f'{row["ms_per_image"]:.0f}']
        for row in result.deployment
    ]


DEPLOYMENT_HEADER = ['model', 'backend', 'precision', *DEPLOYMENT_METRICS, 'ms / image']


def summary_table(result: DemoResult) -> str:
    """The short table printed at the end of ``make demo``."""
    lines = [f'{"metric":<8} {"value":>6} {"target":>7}  met?', '-' * 30]
    for name, value, target, met in result.verdicts():
        lines.append(f'{name:<8} {value:6.1f} {target:7.1f}  {"yes" if met else "NO"}')
    if result.deployment:
        widths = [14, 12, 14, 7, 7, 7, 10]
        lines += ['', 'the trained models exported, evaluated in each runtime (held-out set):']
        for cells in [DEPLOYMENT_HEADER] + deployment_rows(result):
            lines.append(' '.join(f'{c:<{w}}' for c, w in zip(cells, widths)).rstrip())
    total = sum(result.seconds.values())
    lines.append('-' * 30)
    lines.append(
        f'{result.precision}, seed {result.seed}, {total:.0f} s on {result.machine["cpu"]}'
    )
    return '\n'.join(lines)


def _markdown_table(header: List[str], rows: List[List[str]]) -> List[str]:
    return [
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
        *['| ' + ' | '.join(row) + ' |' for row in rows],
    ]


def report_markdown(result: DemoResult) -> str:
    """``report.md``: machine, precision, verdicts, times per phase, per-class results."""
    machine = result.machine
    lines = [
        '# mmeffformer demo report',
        '',
        f'- machine: {machine["cpu"]}, {machine["threads"]} threads; bf16: {machine["bf16"]}',
        f'- software: torch {machine["torch"]}',
        f'- precision: **{result.precision}** ({result.precision_reason})',
        f'- seed: {result.seed}',
        '- iterations: '
        + ', '.join(f'{phase} {count}' for phase, count in result.iterations.items()),
        '',
        '## Held-out results',
        '',
        *_markdown_table(
            ['metric', 'value', 'target', 'met?'],
            [
                [name, f'{value:.1f}', f'{target:.1f}', 'yes' if met else '**no**']
                for name, value, target, met in result.verdicts()
            ],
        ),
        '',
        'Other: '
        + ', '.join(
            f'{name} {value:.1f}' for name, value in result.metrics.items() if name not in TARGETS
        ),
        '',
        *(
            [
                '## Exported models in each runtime',
                '',
                'The trained models exported with `tools/export_onnx.py --part model --deploy` '
                "(one file each, free height and width) and evaluated by the config's test loop "
                'and metric; ms / image is the whole test loop (data, model, metric) per image.',
                '',
                *_markdown_table(DEPLOYMENT_HEADER, deployment_rows(result)),
                '',
            ]
            if result.deployment
            else []
        ),
        '## Time per phase',
        '',
        *_markdown_table(
            ['phase', 'seconds'],
            [[phase, f'{seconds:.0f}'] for phase, seconds in result.seconds.items()]
            + [['**whole demo**', f'**{sum(result.seconds.values()):.0f}**']],
        ),
        '',
        '## Per-class results',
        '',
    ]
    metric_names = list(result.per_class)
    # in the dataset's order, as the metric with the most classes lists them
    longest_first = sorted(result.per_class.values(), key=len, reverse=True)
    classes = list(dict.fromkeys(c for values in longest_first for c in values))
    lines += _markdown_table(
        ['class', *metric_names],
        [
            [c]
            + [
                f'{result.per_class[m][c]:.1f}' if c in result.per_class[m] else '-'
                for m in metric_names
            ]
            for c in classes
        ],
    )
    if result.pictures:
        lines += ['', '## Pictures', '']
        lines += [f'![{name}]({name})' for name in result.pictures]
    return '\n'.join(lines) + '\n'
