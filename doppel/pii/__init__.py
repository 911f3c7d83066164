"""The private-data scrubber: find phone numbers, e-mails, ID, card and bank account (IBAN)
numbers, IPs, token URLs, street addresses and spoken secrets, in the spellings people type to get
past a filter (full-width and other-script digits, digits one by one or split by dots, Chinese
numerals, number words, e-mails spelled out), and replace them with typed placeholders.

Replace, don't drop: the clone should learn that the owner *gives* a phone number at this point
of a conversation, not which one. ``Scrubber`` (``doppel.pii.scrubber``) is the entry point; the
rest of the package is what it is made of:

* ``doppel.pii.normalize``: the text the detectors see (NFKC, ASCII digits, numerals and number
  words as digits), with every character mapped back to the original span;
* ``doppel.pii.patterns``: the compiled patterns of the first detectors and their cheap triggers;
* ``doppel.pii.numbers``: numbers however they are split or spelled, validated by their kind;
* ``doppel.pii.kinds``: HK/TW IDs, passports, WeChat IDs, licence plates, date passwords, e-mails
  spelled out, estates;
* ``doppel.pii.private``: the owner's own values (``[privacy] private_values``);
* ``doppel.pii.validators``: the checks that tell a real number from a look-alike (Luhn, IBAN
  mod 97, CN resident IDs, HK/TW check digits, SSN and North American ranges);
* ``doppel.pii.findings``: the types, one ``Finding``, and how overlapping candidates merge;
* ``doppel.pii.placeholders``: how findings become numbered placeholders.

Imports only the standard library, so the worker can redact generated replies with it.
"""

from doppel.pii.scrubber import Scrubber

__all__ = ["Scrubber"]
