"""``python -m doppel``: the same CLI as the ``doppel`` command."""

from doppel.cli import main

# The guard matters: vLLM spawns processes that re-import the main module.
if __name__ == "__main__":
    main()
