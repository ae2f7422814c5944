"""Taxonomy queries on an in-memory snapshot of the graph (a DAG with several parents, cycles tolerated).

Approach: the edge table is loaded once into compressed sparse rows (CSR) in both directions — numpy
``int32`` arrays, ~8 bytes per edge per direction plus the sorted id array — and every query is a
breadth-first search with a visited set, so cycles end the walk instead of looping. Small searches run
in Python over CSR slices; once a frontier grows past ``VECTOR_FRONTIER`` nodes the level is expanded
with vectorised numpy gathers. Ids are kept as one sorted byte-string array (binary search, no dict), so a
Wikidata-scale snapshot (millions of nodes) costs tens of MB, not GB. Measured in tests/bench/bench_ontology.py.

Definitions (x is the query node; "parents" follow both subclass and instance edges given to the snapshot):
- ``ancestors(x)``: nodes reachable upwards, each with its shortest distance; never contains x itself.
- ``descendants(x)``: the same downwards. Both accept ``max_depth`` and ``limit``.
- ``siblings(x)``: other children of x's parents.
- ``uncles(x)``: siblings of x's parents, minus x and x's parents.
- ``cousins(x)``: children of x's uncles, minus x, x's siblings, parents and uncles.
- ``lowest_common_ancestors(a, b)``: the common ancestors (a node counts as its own ancestor here) with no
  other common ancestor strictly below them; nodes on one cycle are not below each other, so a cycle at
  the bottom of the common set yields all its members. Sorted by (distance from a + from b, id).
- ``path_to_root(x)``: a shortest path from x up to a node without parents; if every ancestor sits on or
  under a cycle with no such node, the path ends at the farthest ancestor. Ties break by id.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ontology.entities import UnknownNode

VECTOR_FRONTIER = 64


def _csr(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((dst, src))
    counts = np.bincount(src, minlength=n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, dst[order].astype(np.int32, copy=False)


def _gather(ptr: np.ndarray, idx: np.ndarray, frontier: np.ndarray) -> np.ndarray:
    """All CSR neighbours of the nodes in ``frontier`` (with repeats), vectorised."""
    starts, ends = ptr[frontier], ptr[frontier + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=idx.dtype)
    shifts = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return idx[shifts + np.arange(total)]


class Taxonomy:
    """An immutable graph snapshot. Build with :meth:`from_edges` (ids) or :meth:`from_indexed` (int-coded)."""

    def __init__(self, ids: np.ndarray, child: np.ndarray, parent: np.ndarray):
        """``ids``: sorted unique byte strings; ``child``/``parent``: edge endpoints as indices into ``ids``."""
        self._ids = ids
        n = len(ids)
        if len(child):
            key = np.unique(child.astype(np.int64) * n + parent.astype(np.int64))
            child, parent = (key // n).astype(np.int32), (key % n).astype(np.int32)
        else:
            child = parent = np.empty(0, dtype=np.int32)
        self._up_ptr, self._up = _csr(child, parent, n)
        self._down_ptr, self._down = _csr(parent, child, n)
        self.edge_count = len(child)

    # ------------------------------------------------------------ building

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[str, str]], nodes: Iterable[str] = ()) -> "Taxonomy":
        """From (child, parent) id pairs; ``nodes`` adds isolated nodes. Ids named only by edges become nodes."""
        edge_list = list(edges)
        child_ids = np.array([c.encode() for c, _ in edge_list], dtype="S") if edge_list else np.empty(0, "S1")
        parent_ids = np.array([p.encode() for _, p in edge_list], dtype="S") if edge_list else np.empty(0, "S1")
        node_ids = np.array([n.encode() for n in nodes], dtype="S") if nodes else np.empty(0, "S1")
        return cls.from_id_arrays(node_ids, child_ids, parent_ids)

    @classmethod
    def from_id_arrays(cls, nodes: np.ndarray, child: np.ndarray, parent: np.ndarray) -> "Taxonomy":
        """From byte-string arrays (what a database COPY produces)."""
        everything = np.concatenate([a.astype("S") for a in (nodes, child, parent)]) if (
            len(nodes) + len(child)) else np.empty(0, "S1")
        ids, inverse = np.unique(everything, return_inverse=True)
        k, m = len(nodes), len(child)
        return cls(ids, inverse[k:k + m].astype(np.int32), inverse[k + m:].astype(np.int32))

    @classmethod
    def from_indexed(cls, ids: Sequence[str] | np.ndarray, child: np.ndarray, parent: np.ndarray) -> "Taxonomy":
        """From node ids and int edge arrays indexing into them (any order; re-sorted here)."""
        raw = np.asarray(ids, dtype="S")
        order = np.argsort(raw, kind="stable")
        rank = np.empty(len(raw), dtype=np.int32)
        rank[order] = np.arange(len(raw), dtype=np.int32)
        return cls(raw[order], rank[np.asarray(child)], rank[np.asarray(parent)])

    def save(self, path: str | Path) -> None:
        np.savez(path, ids=self._ids, up_ptr=self._up_ptr, up=self._up, down_ptr=self._down_ptr, down=self._down)

    @classmethod
    def load(cls, path: str | Path) -> "Taxonomy":
        data = np.load(path)
        taxonomy = cls.__new__(cls)
        taxonomy._ids = data["ids"]
        taxonomy._up_ptr, taxonomy._up = data["up_ptr"], data["up"]
        taxonomy._down_ptr, taxonomy._down = data["down_ptr"], data["down"]
        taxonomy.edge_count = len(taxonomy._up)
        return taxonomy

    # ------------------------------------------------------------ ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, node_id: str) -> bool:
        try:
            self.index(node_id)
        except UnknownNode:
            return False
        return True

    def index(self, node_id: str) -> int:
        key = node_id.encode() if isinstance(node_id, str) else node_id
        i = int(np.searchsorted(self._ids, key))
        if i >= len(self._ids) or self._ids[i] != key:
            raise UnknownNode(node_id if isinstance(node_id, str) else node_id.decode())
        return i

    def id_of(self, index: int) -> str:
        return self._ids[index].decode()

    def ids_of(self, indices: Iterable[int]) -> list[str]:
        return [b.decode() for b in self._ids[np.asarray(list(indices) if not isinstance(indices, np.ndarray)
                                                         else indices, dtype=np.int64)]]

    # ------------------------------------------------------------ neighbours

    def _parents(self, i: int) -> list[int]:
        return self._up[self._up_ptr[i]:self._up_ptr[i + 1]].tolist()

    def _children(self, i: int) -> list[int]:
        return self._down[self._down_ptr[i]:self._down_ptr[i + 1]].tolist()

    def parents(self, node_id: str) -> list[str]:
        return self.ids_of(self._parents(self.index(node_id)))

    def children(self, node_id: str) -> list[str]:
        return self.ids_of(self._children(self.index(node_id)))

    def roots(self) -> list[str]:
        """Nodes without parents."""
        return self.ids_of(np.flatnonzero(np.diff(self._up_ptr) == 0))

    # ------------------------------------------------------------ walks

    def _bfs(self, starts: list[int], up: bool, max_depth: int | None = None,
             limit: int | None = None, stop_at: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """(nodes, depths, truncated): everything reachable from ``starts`` (depth 0, included), by level.

        ``limit`` caps the number of nodes returned besides the starts (whole levels, then cut by id);
        ``stop_at`` ends the walk as soon as that node is reached.
        """
        ptr, idx = (self._up_ptr, self._up) if up else (self._down_ptr, self._down)
        depth: dict[int, int] = {s: 0 for s in starts}
        levels: list[np.ndarray] = []
        visited: np.ndarray | None = None
        frontier: list[int] | np.ndarray = list(depth)
        found, d, truncated = 0, 0, False
        while len(frontier) and (max_depth is None or d < max_depth):
            d += 1
            if visited is None and len(frontier) <= VECTOR_FRONTIER:
                nxt = []
                for v in frontier:
                    for w in idx[ptr[v]:ptr[v + 1]].tolist():
                        if w not in depth:
                            depth[w] = d
                            nxt.append(w)
                frontier = nxt
                if stop_at is not None and stop_at in depth:
                    break
                found += len(nxt)
            else:
                if visited is None:
                    visited = np.zeros(len(self._ids), dtype=bool)
                    visited[np.fromiter(depth, dtype=np.int64, count=len(depth))] = True
                candidates = np.unique(_gather(ptr, idx, np.asarray(frontier, dtype=np.int64)))
                new = candidates[~visited[candidates]]
                visited[new] = True
                levels.append((new, d))
                frontier = new
                if stop_at is not None and visited[stop_at]:
                    break
                found += len(new)
            if limit is not None and found >= limit:
                truncated = found > limit or len(frontier) > 0
                break
        nodes = np.fromiter(depth, dtype=np.int64, count=len(depth))
        depths = np.fromiter(depth.values(), dtype=np.int64, count=len(depth))
        if levels:
            nodes = np.concatenate([nodes] + [lv for lv, _ in levels])
            depths = np.concatenate([depths] + [np.full(len(lv), dd, dtype=np.int64) for lv, dd in levels])
        if limit is not None and len(nodes) - len(starts) > limit:
            order = np.lexsort((nodes, depths))
            keep = order[:len(starts) + limit]
            nodes, depths = nodes[keep], depths[keep]
            truncated = True
        return nodes, depths, truncated

    def _walk(self, node_id: str, up: bool, max_depth: int | None, limit: int | None) -> dict[str, int]:
        start = self.index(node_id)
        nodes, depths, _ = self._bfs([start], up, max_depth, limit)
        mask = nodes != start
        nodes, depths = nodes[mask], depths[mask]
        order = np.lexsort((nodes, depths))
        return dict(zip(self.ids_of(nodes[order]), depths[order].tolist()))

    def ancestors(self, node_id: str, *, max_depth: int | None = None, limit: int | None = None) -> dict[str, int]:
        """Ancestor id → shortest distance (1 = parent), nearest first."""
        return self._walk(node_id, True, max_depth, limit)

    def descendants(self, node_id: str, *, max_depth: int | None = None, limit: int | None = None) -> dict[str, int]:
        """Descendant id → shortest distance (1 = child), nearest first; ``limit`` keeps the nearest ones."""
        return self._walk(node_id, False, max_depth, limit)

    def subtree(self, roots: Iterable[str], *, max_depth: int | None = None) -> np.ndarray:
        """Indices of the roots and all their descendants (vectorised; for plans over large subgraphs)."""
        nodes, _, _ = self._bfs([self.index(r) for r in roots], False, max_depth)
        return np.sort(nodes)

    def is_ancestor(self, ancestor: str, node: str) -> bool:
        """Whether ``ancestor`` is reachable upwards from ``node`` (a node is its own ancestor only on a cycle)."""
        target, start = self.index(ancestor), self.index(node)
        for parent in self._parents(start):
            if parent == target:
                return True
        nodes, _, _ = self._bfs(self._parents(start), True, stop_at=target)
        return bool(np.any(nodes == target))

    # ------------------------------------------------------------ relatives

    def _siblings(self, i: int) -> set[int]:
        out: set[int] = set()
        for p in self._parents(i):
            out.update(self._children(p))
        out.discard(i)
        return out

    def _uncles(self, i: int) -> set[int]:
        parents = set(self._parents(i))
        out: set[int] = set()
        for p in parents:
            out |= self._siblings(p)
        return out - parents - {i}

    def siblings(self, node_id: str) -> list[str]:
        return sorted(self.ids_of(self._siblings(self.index(node_id))))

    def uncles(self, node_id: str) -> list[str]:
        return sorted(self.ids_of(self._uncles(self.index(node_id))))

    def cousins(self, node_id: str) -> list[str]:
        i = self.index(node_id)
        uncles = self._uncles(i)
        out: set[int] = set()
        for u in uncles:
            out.update(self._children(u))
        out -= {i} | self._siblings(i) | set(self._parents(i)) | uncles
        return sorted(self.ids_of(out))

    def lowest_common_ancestors(self, a: str, b: str) -> list[str]:
        ia, ib = self.index(a), self.index(b)
        nodes_a, depths_a, _ = self._bfs([ia], True)
        nodes_b, depths_b, _ = self._bfs([ib], True)
        da = dict(zip(nodes_a.tolist(), depths_a.tolist()))
        db = dict(zip(nodes_b.tolist(), depths_b.tolist()))
        common = set(da) & set(db)
        if not common:
            return []
        # Paths between common ancestors stay inside the common set, so the induced subgraph suffices:
        # the answer is the sink components of its condensation (downward edges).
        components = _strongly_connected({v: [w for w in self._children(v) if w in common] for v in common})
        component_of = {v: k for k, members in enumerate(components) for v in members}
        lowest = [members for k, members in enumerate(components)
                  if not any(component_of[w] != k for v in members for w in self._children(v) if w in common)]
        result = [v for members in lowest for v in members]
        result.sort(key=lambda v: (da[v] + db[v], self.id_of(v)))
        return self.ids_of(result)

    def path_to_root(self, node_id: str) -> list[str]:
        start = self.index(node_id)
        previous: dict[int, int] = {start: -1}
        frontier, best = [start], None
        depth_of = {start: 0}
        while frontier:
            roots = [v for v in frontier if self._up_ptr[v] == self._up_ptr[v + 1]]
            if roots:
                best = min(roots)  # ids are sorted, so the smallest index is the smallest id
                break
            nxt = []
            for v in frontier:
                for w in self._parents(v):
                    if w not in previous:
                        previous[w] = v
                        depth_of[w] = depth_of[v] + 1
                        nxt.append(w)
            if not nxt:
                far = max(depth_of.values())
                best = min(v for v, d in depth_of.items() if d == far)
                break
            frontier = sorted(nxt)
        path = []
        v = best
        while v != -1:
            path.append(v)
            v = previous[v]
        return self.ids_of(path[::-1])


def _strongly_connected(graph: dict[int, list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative (the graphs here are ancestor sets: small, but may be deep)."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in sorted(graph):
        if root in index_of:
            continue
        work = [(root, iter(graph[root]))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, neighbours = work[-1]
            advanced = False
            for w in neighbours:
                if w not in index_of:
                    index_of[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index_of[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index_of[v]:
                members = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    members.append(w)
                    if w == v:
                        break
                components.append(members)
    return components
