"""From imported messages to training samples: clean (filters, PII scrubbing), sessions (bursts and
conversations), samples (ShareGPT records through the shared prompt format), build (the whole
``doppel data build`` step) and report (the data report and its charts)."""
