"""`python -m adapt`: fine-tune a pretrained Transformer as a text classifier (TREC or any labelled text)."""
