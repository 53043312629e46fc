"""`python -m orderlog` is the `orderlog` command."""

from orderlog.cli import main

main()
