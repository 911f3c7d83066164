"""Host and Origin checks for Doppel's own HTTP servers: the web chat and the OpenAI endpoint.

Both listen on this machine, and any web page the owner opens can make the browser send them
requests. Two checks keep such pages out:

- **Host**: a page on ``evil.example`` can point its own name at 127.0.0.1 (DNS rebinding); the
  browser then calls it same-origin, but still sends ``Host: evil.example``. Unless remote use is
  allowed, only loopback names (``localhost``, ``127.0.0.1``, ``[::1]``) are served.
- **Origin**: a browser names the page that made a cross-site request; one from any origin but
  the server's own is refused. Clients that are not browsers (curl, the openai SDK) send none.

``refusal`` says why a request is refused (or None); each server renders it in its own shape.

Tested in ``tests/bot/webchat/test_platform.py`` (refused origins and hosts of the web chat) and
``tests/bot/test_openai_api.py`` (the endpoint's).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from doppel.settings_sections import is_loopback


@dataclass(frozen=True)
class Refusal:
    code: str      # "host_not_allowed" or "origin_not_allowed"
    message: str   # one line for the client


def refusal(host_header: str, origin: str | None, *, allow_remote: bool, what: str = "this server") -> Refusal | None:
    """Why a request with this ``Host`` and ``Origin`` is refused, or None when it may be served."""
    host = urlsplit(f"//{host_header}").hostname or ""
    if not allow_remote and not is_loopback(host):
        return Refusal("host_not_allowed", f"{what} answers on its loopback address only (Host: {host[:80]!r})")
    # A sandboxed page sends "Origin: null": not our origin either.
    if origin and urlsplit(origin).netloc != host_header:
        return Refusal("origin_not_allowed", f"requests from other sites are refused (Origin: {origin[:80]!r})")
    return None
