"""The private-data scrubber: find phone numbers, e-mails, ID, card and bank account (IBAN)
numbers, IPs, token URLs, street addresses and spoken secrets, and replace them with typed
placeholders.

Replace, don't drop: the clone should learn that the owner *gives* a phone number at this point
of a conversation, not which one. ``Scrubber`` (``doppel.pii.scrubber``) is the entry point; the
rest of the package is what it is made of:

* ``doppel.pii.patterns``: the compiled patterns of every detector and their cheap triggers;
* ``doppel.pii.validators``: the checksums that tell a real number from a look-alike (Luhn, IBAN
  mod 97, CN resident ID);
* ``doppel.pii.findings``: the types, one ``Finding``, and how overlapping candidates merge;
* ``doppel.pii.placeholders``: how findings become numbered placeholders.

Imports only the standard library, so the worker can redact generated replies with it.
"""

from doppel.pii.scrubber import Scrubber

__all__ = ["Scrubber"]
