"""`python -m flows.cli`: the `slawatch` command line."""

from flows.cli import main

main()
