import networkx as nx

import graphopt as go
from graphopt.graph.walk import minimal_subgraph, topological_order


def test_topological_order_puts_parents_first_and_visits_shared_nodes_once():
    a = go.param(1, name="a")
    b = a + 1
    c = a * 2
    d = b + c
    order = topological_order([d])
    assert order.index(a) < order.index(b) < order.index(d)
    assert order.index(c) < order.index(d)
    assert len(order) == len(set(order)) == 4


def test_minimal_subgraph_keeps_only_paths_from_trainable_params():
    p = go.param(1, name="p")
    frozen = go.param(5, name="frozen", trainable=False)
    side = frozen + 1          # not downstream of p: excluded
    out = (p + 1) * side
    sub = minimal_subgraph([out])
    assert sub.params == [p]
    assert side not in sub.nodes and frozen not in sub.nodes
    assert sub.nodes[0] is p and sub.nodes[-1] is out


def test_descendants_restricts_to_one_param():
    p, q = go.param(1, name="p"), go.param(2, name="q")
    left = p + 1
    right = q + 1
    out = left + right
    sub = minimal_subgraph([out])
    assert sub.descendants(p) == [p, left, out]


def test_million_node_chain_is_walked_iteratively():
    p = go.param(0, name="p")
    node = p
    for _ in range(1_000_000):
        node = node + 1
    sub = minimal_subgraph([node])
    assert len(sub) == 1_000_001 and sub.params == [p]
    assert node.value == 1_000_000


def test_to_networkx_carries_kind_name_op_and_short_value():
    p = go.param("x" * 500, name="prompt")
    out = p.upper()
    graph = go.graph.to_networkx(out)
    assert isinstance(graph, nx.DiGraph)
    assert graph.nodes[p.id]["kind"] == "param" and graph.nodes[p.id]["param_kind"] == "text"
    assert len(graph.nodes[p.id]["value"]) <= 80
    assert graph.nodes[out.id]["op"] == "call"
    assert nx.is_directed_acyclic_graph(graph)
    assert graph.number_of_edges() == 2  # prompt -> getattr -> call


def test_to_dot_is_valid_looking_text():
    p = go.param('say "hi"', name="prompt")
    dot = go.graph.to_dot(p + "!")
    assert dot.startswith("digraph graphopt {") and dot.rstrip().endswith("}")
    assert '\\"hi\\"' in dot and "->" in dot
