"""Training machinery: the Ignite trainer and its schedules (`engine`), optimizers and their parameter
groups (`optimizers`), the fine-tuning stability techniques (`stability`), metrics and FLOPs counts."""
