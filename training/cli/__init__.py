"""The click commands of ``doppel data``, ``doppel train``, ``doppel eval`` and ``doppel adapters``: they
parse arguments and call the library; nothing in training/ imports them."""
