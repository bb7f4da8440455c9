"""`python -m ivr.cli …` is the `ivr` command (used by `ivr serve` to start its worker)."""
from ivr.cli import main

main()
