"""Taxonomy queries and phrase mapping through the HTTP API, on the Wikidata fixture graph.

The fixture graph: entity > physical object > organism > animal > {mammal, pet, Q1002};
mammal > {house cat, dog, human}; pet > {house cat, dog}; house cat > Q1001;
sculpture ⇄ statue (a cycle), sculpture also under physical object.
"""
import pytest

from tests.conftest import token_client

pytestmark = [pytest.mark.pg, pytest.mark.django_db]


def ids(response):
    assert response.status_code == 200, response.content
    return [n["id"] for n in response.json()["nodes"]]


def test_node_detail_with_parents_and_children(sample_graph, alice):
    body = token_client(alice).get("/api/ontology/nodes/Q146/").json()
    assert body["label"] == "house cat" and body["sitelinks"] == 4
    assert [p["id"] for p in body["parents"]] == ["Q39201", "Q7377"]
    assert body["children"] == [{"id": "Q1001", "label": None}]


def test_relations_on_a_dag_with_several_parents_and_a_cycle(sample_graph, alice):
    client = token_client(alice)
    response = client.get("/api/ontology/nodes/Q146/ancestors/")
    assert ids(response) == ["Q39201", "Q7377", "Q729", "Q7239", "Q223557", "Q35120"]
    assert [n["depth"] for n in response.json()["nodes"]] == [1, 1, 2, 3, 4, 5]
    assert ids(client.get("/api/ontology/nodes/Q729/descendants/?max_depth=1")) == ["Q1002", "Q39201", "Q7377"]
    assert ids(client.get("/api/ontology/nodes/Q729/descendants/?limit=4")) == ["Q1002", "Q39201", "Q7377", "Q144"]
    assert ids(client.get("/api/ontology/nodes/Q146/siblings/")) == ["Q144", "Q5"]
    assert ids(client.get("/api/ontology/nodes/Q146/uncles/")) == ["Q1002"]
    assert ids(client.get("/api/ontology/nodes/Q1001/uncles/")) == ["Q144", "Q5"]
    assert ids(client.get("/api/ontology/nodes/Q1001/cousins/")) == []  # the uncles have no children
    assert ids(client.get("/api/ontology/nodes/Q2002/path/")) == ["Q2002", "Q2001", "Q223557", "Q35120"]
    assert ids(client.get("/api/ontology/nodes/Q2001/ancestors/")) == ["Q2002", "Q223557", "Q35120"]
    assert ids(client.get("/api/ontology/lca/?a=Q1001&b=Q144")) == ["Q39201", "Q7377"]
    assert ids(client.get("/api/ontology/lca/?a=Q2001&b=Q2002")) == ["Q2001", "Q2002"]  # the cycle


def test_unknown_nodes_and_bad_parameters(sample_graph, alice):
    client = token_client(alice)
    assert client.get("/api/ontology/nodes/Q999999/").status_code == 404
    response = client.get("/api/ontology/nodes/Q999999/ancestors/")
    assert response.status_code == 404 and "Q999999" in response.json()["message"]
    assert client.get("/api/ontology/lca/?a=Q146&b=Q0").status_code == 404
    assert client.get("/api/ontology/lca/?a=Q146").status_code == 400
    assert client.get("/api/ontology/nodes/Q146/descendants/?limit=lots").status_code == 400
    assert client.get("/api/ontology/nodes/Q146/descendants/?limit=5000").status_code == 400


def test_search_nodes_by_label(sample_graph, alice):
    body = token_client(alice).get("/api/ontology/nodes/?q=hou").json()
    assert [n["id"] for n in body["results"]] == ["Q146"]


def test_map_and_clean_phrases(sample_graph, alice, hash_embedder):
    client = token_client(alice)
    body = client.post("/api/ontology/phrases/map", {"phrase": "The house cats"}, format="json").json()
    assert body["phrase"] == "house cat" and body["candidates"][0]["node"] == "Q146"
    assert body["candidates"][0]["lexical"] == 1.0 and body["groundable"] is True
    cleaned = client.post("/api/ontology/phrases/clean", {"phrases": ["Dogs", "dog", "background", "Q"]},
                          format="json").json()
    assert [(c["phrase"], c["duplicate_of"], c["node"], c["groundable"]) for c in cleaned] == [
        ("dog", None, "Q144", True), ("dog", "dog", "Q144", True), ("background", None, None, False),
        ("q", None, None, False)]
    assert cleaned[2]["reason"].startswith("scene word")
    assert client.post("/api/ontology/phrases/map", {"phrase": "  the  "}, format="json").status_code == 400
