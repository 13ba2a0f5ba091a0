"""A run's plumbing: its options and read-only plan (`options`), the run folder, its lock and recorded
lifecycle (`run_dir`, `run_state`), atomic writes (`io`), one-line errors (`errors`) and loggers
(`tracking`)."""
