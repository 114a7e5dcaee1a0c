"""`python -m server` is the `balie` command."""

from server.cli import main

if __name__ == "__main__":  # not when a "spawn" worker process imports this module
    main()
