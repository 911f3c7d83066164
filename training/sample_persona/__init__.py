"""The synthetic owner of ``doppel demo``: ``synth`` generates Alex Rivera's Telegram export from
the cast, voices and phrases (the sessions in ``conversations``, their export records in ``records``),
``plant`` plants the private values; the generated export ships in ``data/``."""
