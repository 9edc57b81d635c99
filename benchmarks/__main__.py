"""The benchmark suite's one entry point; run it from the repository root.

    python -m benchmarks [--quick] [--only NAME ...] [--repeats N]   # every benchmark
    python -m benchmarks NAME [its options]                          # one benchmark
    python -m benchmarks render                                      # pages only

A run measures, puts each benchmark's section into ``docs/results/<machine-tag>.json``
(the other sections of that file stay), then renders every page from the results files:
``docs/results/<machine-tag>.md`` per machine, ``docs/model_zoo.md`` and
``configs/metafile.yml`` (a latency column per machine), README's measured figures (one
machine: ``README_MACHINE``) and the list of results pages in ``docs/benchmarks.md``.
Every benchmark of a full run gets a process of its own (peak memory, compile caches).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks import (
    backbone_latency,
    model_zoo,
    numeric_error,
    roi_align,
    train_step,
    whole_model_latency,
)
from benchmarks.common import (
    RESULTS,
    ROOT,
    describe_machine,
    fmt,
    git_commit,
    load_results,
    machine_facts,
    save_section,
    table,
)

#: the benchmarks, in the order a full run and a results page take them
SUITE = (backbone_latency, whole_model_latency, train_step, roi_align, numeric_error, model_zoo)
BY_NAME = {module.NAME: module for module in SUITE}
#: the machine whose results README quotes
README_MACHINE = 'amd-epyc-2c-avx512-bf16'
#: where a rendered block sits in a hand-written page
BLOCKS = {ROOT / 'README.md': 'measured', ROOT / 'docs' / 'benchmarks.md': 'results-pages'}
#: the page on mobile runtimes, with the ExecuTorch runs of README's machine
MOBILE_PAGE = ROOT / 'docs' / 'mobile.md'


# ---------------------------------------------------------------- running


def benchmark_parser(module, quick: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f'python -m benchmarks {module.NAME}', description=module.__doc__.splitlines()[0]
    )
    parser.add_argument(
        '--repeats',
        type=int,
        default=getattr(module, 'REPEATS', 5),
        help='timed calls after 2 warm-ups',
    )
    parser.add_argument('--quick', action='store_true', help='a small form, to check the suite')
    parser.add_argument('--results', type=Path, default=RESULTS, help='results folder')
    parser.add_argument('--no-render', action='store_true', help='leave the pages as they are')
    module.add_arguments(parser)
    if quick:
        parser.set_defaults(**module.QUICK)
    return parser


def run_one(name: str, argv: Sequence[str]) -> int:
    """Measure one benchmark in this process and save its section."""
    module = BY_NAME[name]
    args = benchmark_parser(module, quick='--quick' in argv).parse_args(argv)
    shown = [a for a in argv if a != '--no-render']
    if '--results' in shown:  # where it was saved is not part of what was measured
        index = shown.index('--results')
        del shown[index : index + 2]
    start, commit = time.time(), git_commit()  # the code that measures, not later edits
    section = module.measure(args)
    section.update(
        command=' '.join(['python -m benchmarks', name, *shown]),
        quick=args.quick,
        seconds=round(time.time() - start),
        commit=commit,
    )
    key = module.section_key(args) if hasattr(module, 'section_key') else name
    path = save_section(args.results, machine_facts(), key, section)
    print(f'{name}: {section["seconds"]} s, saved in {path}', flush=True)
    if not args.no_render:
        write_pages(args.results)
    return 0


def run_suite(argv: Sequence[str]) -> int:
    """Every benchmark (or ``--only`` some), each in a process of its own, then the pages."""
    parser = argparse.ArgumentParser(prog='python -m benchmarks', description=__doc__)
    parser.add_argument('--quick', action='store_true', help='small forms: within 10 minutes')
    parser.add_argument('--only', nargs='+', choices=list(BY_NAME), default=list(BY_NAME))
    parser.add_argument('--repeats', type=int, help="each benchmark's own default unless given")
    parser.add_argument('--results', type=Path, default=RESULTS, help='results folder')
    args = parser.parse_args(argv)
    start = time.time()
    for name in args.only:
        command = [sys.executable, '-m', 'benchmarks', name, '--no-render']
        command += ['--results', str(args.results)]
        command += ['--quick'] if args.quick else []
        command += ['--repeats', str(args.repeats)] if args.repeats else []
        subprocess.run(command, check=True, cwd=ROOT)
    write_pages(args.results)
    print(f'suite: {(time.time() - start) / 60:.1f} minutes')
    return 0


# ---------------------------------------------------------------- pages


def machine_page(results: dict) -> str:
    """docs/results/<tag>.md: every section of one machine's results file."""
    machine = results['machine']
    versions = ', '.join(f'{k} {v}' for k, v in machine['versions'].items() if v)
    lines = [
        f'# Results: {machine["tag"]}',
        '',
        'Rendered by `python -m benchmarks render` from '
        f'[{machine["tag"]}.json]({machine["tag"]}.json); [benchmarks.md](../benchmarks.md) '
        'says how to run the suite and read these tables.',
        '',
        f'Machine: {describe_machine(machine)}. Python {machine["python"]}, {versions}.',
        '',
    ]
    for module in SUITE:
        for key, section in results['benchmarks'].items():
            if key == module.NAME:
                lines += [f'## {module.TITLE}', '', *module.render(section, machine)]
            elif key.startswith(module.NAME + ':'):  # a run of its own, e.g. with ExecuTorch
                title = f'{module.TITLE}: {key.split(":", 1)[1]}'
                lines += [f'## {title}', '', *module.render(section, machine)]
    return '\n'.join(lines).rstrip('\n') + '\n'


def readme_machine(all_results: List[dict]) -> Optional[dict]:
    """The results README quotes: ``README_MACHINE``'s, else the first file."""
    chosen = [r for r in all_results if r['machine']['tag'] == README_MACHINE]
    return (chosen or all_results or [None])[0]


def measured_block(results: dict) -> List[str]:
    """README's figures: the headline quantities of one machine's results."""
    machine, sections = results['machine'], results['benchmarks']
    tag = machine['tag']
    rows = []
    backbones = sections.get('backbone_latency', {}).get('records', [])
    for model in dict.fromkeys(r['model'] for r in backbones if r.get('allocator') != 'default'):
        mine = [r for r in backbones if r['model'] == model and r.get('allocator') != 'default']
        size = mine[-1]['size']
        rows.append([f'{model} backbone, {size}', *_headline(r for r in mine if r['size'] == size)])
    whole = sections.get('whole_model_latency', {}).get('records', [])
    for model in dict.fromkeys(r['model'] for r in whole):
        mine = [
            dict(r, mode=r['column'].split()[0], precision=r['column'].split()[1])
            for r in whole
            if r['model'] == model
        ]
        rows.append([f'{model}, {mine[0]["size"]}, whole model', *_headline(mine)])
    body = [
        [what, f'{eval_ms} / {fastest} / {runtime}'] for what, eval_ms, fastest, runtime in rows
    ]
    steps = sections.get('train_step', {}).get('records', [])
    for record in steps:
        body.append(
            [f'{record["model"]} training step (512x512), {record["mode"]}', f'{record["s"]:.2f} s']
        )
    lines = [
        f'`python -m benchmarks` on {describe_machine(machine)} ({_dates(results)}); every '
        'figure is in '
        f'[docs/results/{tag}.json](docs/results/{tag}.json), with the tables on '
        f'[docs/results/{tag}.md](docs/results/{tag}.md). Batch 1, random weights, median '
        'ms; backbone and whole-model rows read: fp32 eval / fastest PyTorch mode / fastest '
        'runtime (ONNX Runtime or OpenVINO on the exported file).',
        '',
        *table(['what', 'figure'], body),
    ]
    return lines


def _headline(records) -> List[str]:
    records = list(records)
    eval_ms = next(
        (r['ms'] for r in records if (r['mode'], r['precision']) == ('eval', 'fp32')), None
    )
    pytorch = [r for r in records if r['mode'] in ('eval', 'deploy', 'compiled')]
    # float forms only: INT8 changes the numbers, its speed-ups have their own columns
    runtimes = [
        r for r in records if r['mode'] in ('onnxruntime', 'openvino') and r['precision'] != 'int8'
    ]
    best = min(pytorch, key=lambda r: r['ms'])
    runtime = min(runtimes, key=lambda r: r['ms']) if runtimes else None
    return [
        f'{fmt(eval_ms, 0)} ms',
        f'{best["ms"]:.0f} ms ({best["mode"]} {best["precision"]})',
        f'{runtime["ms"]:.0f} ms ({runtime["mode"]} {runtime["precision"]})' if runtime else '—',
    ]


def _dates(results: dict) -> str:
    dates = sorted({s['date'] for s in results['benchmarks'].values()})
    return dates[0] if len(dates) == 1 else f'{dates[0]} to {dates[-1]}'


def mobile_block(results: dict) -> List[str]:
    """docs/mobile.md's figures: the ExecuTorch runs (``:executorch`` sections) of one machine."""
    machine, tag = results['machine'], results['machine']['tag']
    lines = [
        f'On {describe_machine(machine)}; every figure is in '
        f'[results/{tag}.json](results/{tag}.json).',
        '',
    ]
    for module in (whole_model_latency, backbone_latency):
        section = results['benchmarks'].get(f'{module.NAME}:executorch')
        if section:
            lines += [f'**{module.TITLE}**', '', *module.render(section, machine)]
    return lines


def pages_block(all_results: List[dict]) -> List[str]:
    """The list of results pages in docs/benchmarks.md."""
    body = []
    for results in all_results:
        machine = results['machine']
        body.append(
            [
                f'[{machine["tag"]}](results/{machine["tag"]}.md)',
                describe_machine(machine),
                ', '.join(results['benchmarks']),
                _dates(results),
            ]
        )
    return table(['results page', 'machine', 'benchmarks', 'measured'], body)


def with_block(text: str, name: str, lines: List[str]) -> str:
    """``text`` with the lines between its ``<!-- name:start -->`` and ``<!-- name:end -->``
    markers replaced."""
    start, end = f'<!-- {name}:start -->', f'<!-- {name}:end -->'
    if start not in text or end not in text:
        raise ValueError(f'the page has no {start} ... {end} block to render into')
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return head + start + '\n' + '\n'.join(lines) + '\n' + end + tail


def render_pages(results_folder: Path = RESULTS) -> Dict[Path, str]:
    """``{path: text}`` of every rendered page, from the results files in ``results_folder``."""
    all_results = load_results(results_folder)
    pages = {
        Path(results_folder) / f'{r["machine"]["tag"]}.md': machine_page(r) for r in all_results
    }
    if (
        Path(results_folder).resolve() != RESULTS.resolve()
    ):  # a scratch run: its pages only, the docs stay
        return pages
    pages[model_zoo.PAGE] = model_zoo.render_page(all_results)
    pages[model_zoo.METAFILE] = model_zoo.render_metafile(all_results)
    chosen = readme_machine(all_results)
    readme, index = BLOCKS
    if chosen:
        pages[readme] = with_block(readme.read_text(), 'measured', measured_block(chosen))
        pages[MOBILE_PAGE] = with_block(
            MOBILE_PAGE.read_text(), 'executorch-latency', mobile_block(chosen)
        )
    pages[index] = with_block(index.read_text(), 'results-pages', pages_block(all_results))
    return pages


def write_pages(results_folder: Path = RESULTS) -> None:
    for path, text in render_pages(results_folder).items():
        path.write_text(text)
        print(f'rendered {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in BY_NAME:
        return run_one(argv[0], argv[1:])
    if argv and argv[0] == 'render':
        parser = argparse.ArgumentParser(prog='python -m benchmarks render')
        parser.add_argument('--results', type=Path, default=RESULTS)
        write_pages(parser.parse_args(argv[1:]).results)
        return 0
    return run_suite(argv)


if __name__ == '__main__':
    sys.exit(main())
