"""Ontology (Wikidata / WordNet taxonomies, phrases, hard negatives): a plain library, no Django.

Not built yet: phrases come from the synthetic world and manual entry. See docs/architecture.md.
"""
