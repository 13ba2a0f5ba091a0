"""Other people's checkpoints: Hugging Face GPT-2/GPT-NeoX/BERT import and export (`hf`, with GPT-NeoX's
mapping in `neox` and the shared pieces in `mapping`) and its command line (`python -m minitransformer hf`),
the NAACL 2019 hands-on's own checkpoint (`hands_on`)."""
