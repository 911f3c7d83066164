"""The scrubber's evaluation set: ``fakes`` makes realistic private values, ``evalset`` generates and
reads the labelled set, ``score`` measures recall and precision (``doppel data pii-eval``)."""
