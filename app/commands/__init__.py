"""The commands of `aiworker-events` (app/commands/cli.py): the web and worker processes, dev, demo, replay, reconcile,
k8s-watch, schemas, trace. They import every package; nothing but the commands themselves (and tests, bench/)
imports them (tests/test_layers.py)."""
