"""`python -m fronde`: the CLI where the `fronde` script is not installed (e.g. a checkout on PYTHONPATH)."""

from fronde.cli.main import main

main(prog_name="fronde")
