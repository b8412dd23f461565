"""`python -m tufrepo` runs the command line."""

from tufrepo.cli import main

main()
