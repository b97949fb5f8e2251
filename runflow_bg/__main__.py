"""Allow `python -m runflow_bg`."""

from runflow_bg.cli.app import main

main()
