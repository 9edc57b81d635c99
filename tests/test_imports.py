"""The package's import structure: no import circle, a registry that imports nothing of
ours, and every ``mmeffformer.X`` name that configs and tools use resolvable lazily."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Optional, Set

from tests.helpers.fresh_interpreter import run_fresh

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'mmeffformer'
# register_all_modules's job is importing every registering module, as in mmdet
SETUP_ENV = 'mmeffformer.utils.setup_env'


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def modules() -> Dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob('*.py')) if '.mim' not in p.parts}


def import_time_statements(body: List[ast.stmt]) -> List[ast.stmt]:
    """The import statements that run when the module is imported: module level and
    class bodies, inside if / try / with blocks, but not inside functions."""
    found = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        else:
            for field in ('body', 'orelse', 'finalbody', 'handlers'):
                children = getattr(node, field, None) or []
                found += import_time_statements([c for c in children if isinstance(c, ast.AST)])
    return found


def all_import_statements(tree: ast.AST) -> List[ast.stmt]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def imported_modules(node: ast.stmt, importer: str, is_package: bool, known: Set[str]) -> Set[str]:
    """Our modules a statement imports, with the packages whose ``__init__`` it runs."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = importer.split('.') if is_package else importer.split('.')[:-1]
            base = base[: len(base) - node.level + 1]
            module = '.'.join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ''
        targets = [module] + [f'{module}.{alias.name}' for alias in node.names]
    found = set()
    for target in targets:
        parts = target.split('.')
        for end in range(1, len(parts) + 1):  # a.b.c runs a, a.b and a.b.c
            name = '.'.join(parts[:end])
            if name in known:
                found.add(name)
    ancestors = {'.'.join(importer.split('.')[:end]) for end in range(1, importer.count('.') + 2)}
    # a module's own packages are initialised before it, by Python itself
    return found - ancestors


def import_graph(lazy: bool = False) -> Dict[str, Set[str]]:
    """Module -> our modules it imports: when imported, or also inside functions."""
    known = modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        statements = import_time_statements(tree.body)
        if lazy and name != SETUP_ENV:
            statements = all_import_statements(tree)
        is_package = path.name == '__init__.py'
        graph[name] = set().union(
            *(imported_modules(s, name, is_package, set(known)) for s in statements)
        )
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child) :] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None


def test_relative_imports_resolve_to_our_modules():
    graph = import_graph()
    assert (
        'mmeffformer.models.backbones.base' in graph['mmeffformer.models.backbones.efficientformer']
    )
    assert 'mmeffformer.engine.compat' in graph['mmeffformer']
    assert 'mmeffformer.registry' in graph['mmeffformer.models.roi_heads.mask_budget_roi_head']


def test_no_import_circle_at_import_time():
    assert find_cycle(import_graph()) is None


def test_no_import_circle_through_function_level_imports_either():
    """Only register_all_modules, whose job is importing everything, may import lazily
    what imports it; no other function-level import closes a circle."""
    assert find_cycle(import_graph(lazy=True)) is None


def test_the_registry_imports_nothing_of_ours_even_lazily():
    assert import_graph(lazy=True)['mmeffformer.registry'] == set()


def test_register_all_modules_imports_every_registering_package():
    assert import_graph(lazy=False)[SETUP_ENV] == set()
    lazily = {
        'mmeffformer.datasets',
        'mmeffformer.engine',
        'mmeffformer.evaluation',
        'mmeffformer.models',
        'mmeffformer.models.roi_heads',
    }
    tree = ast.parse(modules()[SETUP_ENV].read_text())
    found = set().union(
        *(
            imported_modules(s, SETUP_ENV, False, set(modules()))
            for s in all_import_statements(tree)
        )
    )
    assert lazily <= found


def registered_names_in_use() -> Set[str]:
    """Every ``'mmeffformer.Name'`` string in the configs, the package and the tools."""
    names = set()
    for folder in ('configs', 'mmeffformer', 'tools'):
        for path in (ROOT / folder).rglob('*.py'):
            if '.mim' not in path.parts:
                names |= set(re.findall(r"['\"]mmeffformer\.([A-Z]\w+)['\"]", path.read_text()))
    return names


def test_every_name_in_use_resolves_from_a_fresh_interpreter():
    names = sorted(registered_names_in_use())
    assert {'EfficientFormer', 'MatmulRoIExtractor', 'CPUAutocastOptimWrapper'} <= set(names)
    code = (
        'from mmeffformer import registry\n'
        'registries = [getattr(registry, n) for n in '
        "('MODELS', 'TRANSFORMS', 'LOOPS', 'METRICS', 'OPTIM_WRAPPERS')]\n"
        f'for name in {names!r}:\n'
        '    found = [r.get(name) for r in registries]\n'
        '    classes = [c for c in found if c is not None]\n'
        '    print(name, classes[0].__module__ if len(classes) == 1 else len(classes))\n'
    )
    resolved = dict(line.split() for line in run_fresh(code).splitlines())
    assert sorted(resolved) == names
    for name, where in resolved.items():
        assert where.startswith('mmeffformer.'), (name, where)  # exactly one registry has it


def test_public_import_paths():
    code = (
        'from mmeffformer.models import EfficientFormer, EfficientFormerV2, switch_to_deploy\n'
        'from mmeffformer.models.roi_heads import MaskBudgetRoIHead, MatmulRoIExtractor\n'
        'from mmeffformer.engine import CPUAutocastOptimWrapper, AutocastValLoop\n'
        'from mmeffformer.evaluation import ClasswiseIoUMetric\n'
        'from mmeffformer.datasets import AlignResize\n'
        'from mmeffformer.export import export_onnx, verify_onnx\n'
        'from mmeffformer.runtimes import build_backend, ExportedDetector\n'
        'from mmeffformer.utils import register_all_modules\n'
        'from mmeffformer import register_all_modules as same\n'
        'print(same is register_all_modules)\n'
    )
    assert run_fresh(code) == 'True'
