"""A run's plumbing: its options (`options`) and typed, read-only plan (`plan`), the run folder, its lock and recorded
lifecycle (`run_dir`, `run_state`), atomic writes (`io`), one-line errors (`errors`) and loggers
(`tracking`)."""
