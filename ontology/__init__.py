"""Ontology: taxonomies, phrases and hard negatives — a plain library (no Django imports).

- ``ontology.wikidata.read_dump(path)``: stream items from a Wikidata JSON dump (.json/.gz/.bz2).
- ``ontology.wordnet.read_nouns(folder)``: WordNet noun synsets as the same :class:`~ontology.entities.Entity`.
- ``ontology.ingest.ingest_dump(path, sink)``: batches with resumable checkpoints into any sink.
- ``ontology.taxonomy.Taxonomy``: ancestors, descendants, siblings, cousins, uncles, LCA, path to root on an
  in-memory CSR snapshot (DAGs with several parents and cycles).
- ``ontology.phrases``: normalisation, near-duplicates, groundability, phrase → node mapping (lexical + MiniLM).
- ``ontology.negatives``: hard-negative candidates and the SAM 3 adversarial filter (``propose`` injected).
- ``ontology.synthetic.map_synthetic_phrase``: the synthetic shapes world's phrases on WordNet.

The platform's face of it (tables, API, admin, cpu-queue tasks) is ``dataengine.taxonomy``.
"""
