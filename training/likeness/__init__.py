"""How much the clone sounds like its owner: ``evaluate`` (held-out perplexity, generated replies,
the likeness report) and ``style`` (the style profile and its distance)."""
