"""The `fronde` command line: one sub-command group per pipeline stage."""
