"""The local web chat (`doppel bot web`): a platform adapter on the shared bot core (``platform``), its aiohttp
page and WebSocket (``server``, ``static/``), the adapter panel (``panel``) and the scripted friends (``friends``)."""
