"""Taxonomy queries against answers computed by hand on a DAG with several parents and a cycle.

        A                 K → X ⇄ Y   (X and Y are each other's parent; X is also a child of C)
      /   \\
     B     C
    / \\   / | \\
   D   E    F  X
   |   |   / \\
   G   H  I   J          E has two parents (B and C)
"""
import numpy as np
import pytest

from ontology.entities import UnknownNode
from ontology.taxonomy import VECTOR_FRONTIER, Taxonomy

EDGES = [("B", "A"), ("C", "A"), ("D", "B"), ("E", "B"), ("E", "C"), ("F", "C"), ("G", "D"), ("H", "E"),
         ("I", "F"), ("J", "F"), ("X", "Y"), ("Y", "X"), ("X", "C"), ("K", "X")]


@pytest.fixture(scope="module")
def graph():
    return Taxonomy.from_edges(EDGES, nodes=["LONELY"])


def test_ancestors_with_shortest_distances(graph):
    assert graph.ancestors("H") == {"E": 1, "B": 2, "C": 2, "A": 3}
    assert graph.ancestors("H", max_depth=2) == {"E": 1, "B": 2, "C": 2}
    assert graph.ancestors("K") == {"X": 1, "Y": 2, "C": 2, "A": 3}  # the X ⇄ Y cycle ends the walk
    assert graph.ancestors("A") == {} and graph.ancestors("LONELY") == {}


def test_descendants_with_depth_and_limit(graph):
    assert graph.descendants("C") == {"E": 1, "F": 1, "X": 1, "H": 2, "I": 2, "J": 2, "K": 2, "Y": 2}
    assert graph.descendants("A", max_depth=1) == {"B": 1, "C": 1}
    assert graph.descendants("A", limit=3) == {"B": 1, "C": 1, "D": 2}  # nearest first, then by id
    assert graph.descendants("X") == {"K": 1, "Y": 1}  # X itself is not its own descendant


def test_siblings_uncles_cousins(graph):
    assert graph.siblings("E") == ["D", "F", "X"]  # via B and via C
    assert graph.siblings("A") == []
    assert graph.uncles("H") == ["D", "F", "X"]
    assert graph.uncles("G") == ["E"]
    assert graph.cousins("H") == ["G", "I", "J", "K", "Y"]
    assert graph.cousins("G") == ["H"]


def test_lowest_common_ancestors(graph):
    assert graph.lowest_common_ancestors("G", "H") == ["B"]
    assert graph.lowest_common_ancestors("H", "I") == ["C"]
    assert graph.lowest_common_ancestors("H", "E") == ["E"]  # a node is its own ancestor here
    assert graph.lowest_common_ancestors("K", "Y") == ["X", "Y"]  # the cycle is the bottom of the common set
    assert graph.lowest_common_ancestors("G", "LONELY") == []


def test_path_to_the_root(graph):
    assert graph.path_to_root("H") == ["H", "E", "B", "A"]  # B before C: ties break by id
    assert graph.path_to_root("K") == ["K", "X", "C", "A"]
    assert graph.path_to_root("A") == ["A"]
    cycle_only = Taxonomy.from_edges([("P", "Q"), ("Q", "P"), ("R", "P")])
    assert cycle_only.path_to_root("R") == ["R", "P", "Q"]  # no root above: ends at the farthest ancestor


def test_membership_and_unknown_nodes(graph):
    assert graph.is_ancestor("A", "K") and graph.is_ancestor("X", "X") and not graph.is_ancestor("K", "X")
    assert graph.parents("E") == ["B", "C"] and graph.children("F") == ["I", "J"]
    assert graph.roots() == ["A", "LONELY"]
    with pytest.raises(UnknownNode, match="'Q42'"):
        graph.ancestors("Q42")
    assert "Q42" not in graph and "A" in graph


def test_wide_levels_take_the_vectorised_path_with_the_same_answers():
    n = VECTOR_FRONTIER * 4
    edges = [(f"m{i:04d}", "root") for i in range(n)] + [(f"leaf{i:04d}", f"m{i:04d}") for i in range(n)]
    edges += [(f"leaf{i:04d}", f"m{(i + 1) % n:04d}") for i in range(n)]  # two parents each
    edges += [("root", "leaf0000")]  # and a long cycle back to the top
    graph = Taxonomy.from_edges(edges)
    below = graph.descendants("root")
    assert len(below) == 2 * n and below["m0000"] == 1 and below["leaf0007"] == 2
    assert graph.subtree(["root"]).tolist() == list(range(len(graph)))
    assert graph.descendants("root", limit=10) == {f"m{i:04d}": 1 for i in range(10)}
    assert graph.ancestors("leaf0003") == {"m0003": 1, "m0004": 1, "root": 2, "leaf0000": 3, "m0000": 4, "m0001": 4}


def test_snapshots_save_and_load(graph, tmp_path):
    graph.save(tmp_path / "taxonomy.npz")
    loaded = Taxonomy.load(tmp_path / "taxonomy.npz")
    assert loaded.ancestors("H") == graph.ancestors("H") and loaded.cousins("H") == graph.cousins("H")


def test_int_coded_builds_match():
    ids = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "X", "Y"]
    at = {n: i for i, n in enumerate(ids)}
    graph = Taxonomy.from_indexed(ids, np.array([at[c] for c, _ in EDGES]), np.array([at[p] for _, p in EDGES]))
    assert graph.ancestors("K") == {"X": 1, "Y": 2, "C": 2, "A": 3}
