"""``python -m layerdecomp``: the command line."""

from .cli import main

main()
