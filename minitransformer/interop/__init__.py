"""Other people's checkpoints: Hugging Face GPT-2/BERT import and export (`hf`) and its command line
(`python -m minitransformer hf`), the NAACL 2019 hands-on's own checkpoint (`hands_on`)."""
