"""``python -m doppel``: the same CLI as the ``doppel`` command."""

from doppel.cli import main

main()
