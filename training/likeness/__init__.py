"""How much the clone sounds like its owner: ``evaluate`` (held-out perplexity and generated replies,
scored), ``report`` (the likeness report: eval.json, its chart, the tables) and ``style`` (the style
profile and its distance)."""
