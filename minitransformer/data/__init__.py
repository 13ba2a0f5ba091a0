"""Data pipelines: WikiText for language modelling, labelled text (TREC) for classification."""
