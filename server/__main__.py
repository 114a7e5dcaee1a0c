"""`python -m server` is the `balie` command."""

from server.cli import main

main()
