"""``python -m lexp`` runs the command-line interface."""

from lexp.cli import main

main()
