"""Import cycles inside a package: modules that import each other, directly or round a loop. The layer
contracts of import-linter see only imports between layers; a loop inside one layer (two runtime modules
importing each other) passes them. ``make test`` runs this right after them::

    python -m modelpress.testing.import_cycles modelpress     # exit 1 listing each cycle, else exit 0

    cycles = find_cycles(edges(import_graph("modelpress")))    # [["pkg.a", "pkg.b"]]: each a sorted list

The import graph is grimp's (import-linter's own graph library). Every ``import`` statement counts: those at
module level, those inside functions, and those under ``if TYPE_CHECKING:``. A type-only import is still a
dependency of the design: the importing module cannot be read, typed or changed without the other, and a
loop made of such imports is the same knot as any other (the registry and model control were one, held
together by a ``TYPE_CHECKING`` import). Break a cycle by moving what both need into a module below them,
or by passing an object in, never by hiding the import.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping


def import_graph(package: str):
    """grimp's import graph of ``package`` (importable from ``sys.path``), its own modules only."""
    import grimp

    return grimp.build_graph(package, include_external_packages=False, cache_dir=None)


def edges(graph) -> dict[str, set[str]]:
    """Each module of a grimp graph -> the modules it imports::

        edges(import_graph("modelpress"))["modelpress.layout"]     # {"modelpress.errors", ...} or set()
    """
    return {module: graph.find_modules_directly_imported_by(module) - {module} for module in graph.modules}


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each one cycle or more), sorted::

        find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})     # [["a", "b"]]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]  # Tarjan's algorithm, without recursion
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def describe(cycle: list[str], graph) -> str:
    """A cycle as lines a reader can act on: the modules, then each import that ties them, with its line
    (``graph``: grimp's)."""
    members = set(cycle)
    lines = [f"import cycle among {len(cycle)} modules: {', '.join(cycle)}"]
    for importer in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            for detail in graph.get_import_details(importer=importer, imported=imported) or [{}]:
                where = f" (line {detail['line_number']}: {detail['line_contents'].strip()})" if detail else ""
                lines.append(f"  {importer} imports {imported}{where}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m modelpress.testing.import_cycles PACKAGE   (e.g. modelpress)", file=sys.stderr)
        return 2
    package = args[0]
    graph = import_graph(package)
    cycles = find_cycles(edges(graph))
    for cycle in cycles:
        print(describe(cycle, graph))
    if cycles:
        print(f"{len(cycles)} import cycle(s) in {package}: make the imports run one way "
              "(move what both need below them, or pass an object in)")
        return 1
    print(f"no import cycle in {package} ({len(graph.modules)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
