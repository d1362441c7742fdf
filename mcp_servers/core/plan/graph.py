"""The dependency graph: missing dependencies and cycles, in time linear in its size."""

from __future__ import annotations

from collections import deque

from .lines import _field_line
from .model import Plan, Problem, Task

# -- the dependency graph, in time linear in its size -------------------------------------------------------


def check_graph(plan: Plan) -> None:
    """Missing dependencies and cycles, each reported at the line of the task that names them. Linear time.

    Every cycle has a back edge (a task depending on one later in the file) from its earliest task, and the
    rest of the cycle stays among tasks no earlier than that one. So a plan with no back edge (the usual way
    to write one) has no cycle, and otherwise a search from each back edge, kept to later tasks, finds them;
    past a budget of work proportional to the graph, Kahn's and Tarjan's algorithms take over.
    """
    by_id = plan.by_id
    get = by_id.get
    back: list[tuple[Task, Task]] = []
    edges = 0
    lines: list[str] | None = None  # split once, for the first missing dependency's line
    for task in by_id.values():
        if not task.depends_on:
            continue
        resolved = []
        mine = task.order
        for dep in task.depends_on:
            target = get(dep)
            if target is None:
                message = f"task `{task.id}` depends on `{dep}`, which is not in the plan"
                lines = plan.lines if lines is None else lines
                plan.problems.append(Problem(_field_line(lines, task, "depends_on"), "missing-dependency", message))
                continue
            resolved.append(target.id)  # the task's own string: one object per id, however often it is named
            if target.order >= mine:  # a dependency on a later task, or on itself
                back.append((task, target))
        edges += len(resolved)
        task.depends_on = tuple(resolved)
    if back and not _no_cycle_through(back, by_id, 4 * (len(by_id) + edges)):
        _report_cycles(plan)


def _no_cycle_through(back: list[tuple[Task, Task]], by_id: dict[str, Task], budget: int) -> bool:
    """True when no back edge closes a cycle; False when one does, or when the search ran out of budget."""
    for tail, head in back:
        floor = tail.order
        stack, seen = [head], {head.id}
        while stack:
            budget -= 1
            if budget < 0:
                return False
            node = stack.pop()
            if node is tail:
                return False
            for dep in node.depends_on:
                nxt = by_id[dep]
                if nxt.order >= floor and dep not in seen:
                    seen.add(dep)
                    stack.append(nxt)
    return True


def _report_cycles(plan: Plan) -> None:
    by_id = plan.by_id
    left = _not_orderable(by_id)
    # in plan order, so that the same plan always reports the same cycles
    graph = {t: [d for d in task.depends_on if d in left] for t, task in by_id.items() if t in left}
    for cycle in find_cycles(graph):
        first = by_id[cycle[0]]
        shown = cycle if len(cycle) <= 12 else [*cycle[:6], f"… {len(cycle) - 10} more …", *cycle[-4:]]
        path = " → ".join([*shown, cycle[0]])
        message = f"dependency cycle of {len(cycle)} tasks: {path}; remove one of these dependencies"
        plan.problems.append(Problem(first.line, "cycle", message))


def _not_orderable(by_id: dict[str, Task]) -> set[str]:
    """Kahn's algorithm: peel off tasks whose dependencies are all peeled; what remains is in, or behind, a cycle."""
    index = {task_id: n for n, task_id in enumerate(by_id)}
    waiting = [0] * len(index)
    dependents: list[list[int]] = [[] for _ in index]
    for task_id, task in by_id.items():
        me = index[task_id]
        for dep in task.depends_on:
            waiting[me] += 1
            dependents[index[dep]].append(me)
    ready = [n for n, count in enumerate(waiting) if count == 0]
    while ready:
        for nxt in dependents[ready.pop()]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    ids = list(index)
    return {ids[n] for n, count in enumerate(waiting) if count}


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle (as a path of nodes) per strongly connected component that has one. O(V + E).

    Tarjan's algorithm, iterative (a 10,000-task chain must not hit Python's recursion limit).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, edge = work.pop()
            if edge == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph.get(node, [])
            if edge < len(successors):
                work.append((node, edge + 1))
                nxt = successors[edge]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = _pop_component(stack, on_stack, node)
                if len(component) > 1 or node in graph.get(node, []):
                    cycles.append(_cycle_in(component, graph, node))
    return cycles


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> set[str]:
    """Tarjan's step: the nodes above `root` on the stack (and `root`) form one strongly connected component."""
    component: set[str] = set()
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
        if member == root:
            return component


def _cycle_in(component: set[str], graph: dict[str, list[str]], start: str) -> list[str]:
    """A shortest cycle through `start` inside its strongly connected component (the easiest for a person to
    break): a breadth-first search from `start` back to it, in time linear in the component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt in component and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in no cycle of its component")  # (a component of one has a self-loop)
