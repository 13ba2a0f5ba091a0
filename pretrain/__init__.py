"""`python -m pretrain`: pretrain the Transformer as a causal or masked language model on WikiText."""
