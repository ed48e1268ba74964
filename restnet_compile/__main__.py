"""``python -m restnet_compile`` runs the CLI."""

from restnet_compile.cli import main

main()
