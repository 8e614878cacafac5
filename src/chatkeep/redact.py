"""Keeping API keys out of what chatkeep writes and prints, and finding secrets and personal data in text.

``redact`` masks keys in log lines and error messages. ``Redactor`` finds the
API keys of the major providers, email addresses, phone numbers, card numbers
(Luhn checksum) and IBANs (mod-97) in stored text, for ``chatkeep redact`` and
the ``redact_on_write`` setting; phone numbers are found by ``phonenumbers``
(Google's libphonenumber), checksums checked by ``python-stdnum``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = ["DETECTORS", "KEY_PATTERNS", "Finding", "Redactor", "client_secrets", "redact"]

# OpenAI-style keys (sk-..., sk-proj-...); servers echo a rejected key back in their error.
_KEY = re.compile(r"\b(sk-[A-Za-z0-9]{0,4})[A-Za-z0-9_*\-]{8,}")

_END = r"(?![A-Za-z0-9_\-])"
#: The API keys of the major providers, as they are issued; group 1 is the public prefix a log keeps.
#: Anthropic's come before OpenAI's, whose ``sk-`` they share.
KEY_PATTERNS: dict[str, re.Pattern[str]] = {
    "anthropic_key": re.compile(r"\b(sk-ant-)[A-Za-z0-9_\-]{20,}" + _END),
    "openai_key": re.compile(r"\b(sk-(?!ant-)(?:proj-|svcacct-|admin-)?)[A-Za-z0-9_\-]{20,}" + _END),
    "google_key": re.compile(r"\b(AIza)[A-Za-z0-9_\-]{35}" + _END),
    "aws_key": re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    "github_token": re.compile(r"\b(gh[pousr]_)[A-Za-z0-9]{36,}\b|\b(github_pat_)[A-Za-z0-9_]{22,}\b"),
    "slack_token": re.compile(r"\b(xox[abposr]-)[A-Za-z0-9\-]{10,}" + _END),
    "stripe_key": re.compile(r"\b((?:sk|rk)_live_)[A-Za-z0-9]{16,}\b"),
}

#: Shorter strings are not treated as secrets: replacing them would garble ordinary text.
_MIN_SECRET = 6


def client_secrets(client: object) -> tuple[str, ...]:
    """The secrets an SDK client holds (its API key, whatever its shape), to keep out of anything stored."""
    key = getattr(client, "api_key", None)
    return (key,) if isinstance(key, str) and len(key) >= _MIN_SECRET else ()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and anything shaped like an OpenAI key replaced by ``***``.

    Known secrets are the ones given (a client's actual key: ``gsk_…``, an Azure
    hex key, anything) and ``$OPENAI_API_KEY``, which servers echo back when
    they reject it.
    """
    known = [*secrets, os.environ.get("OPENAI_API_KEY", "")]
    for secret in sorted({s for s in known if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _KEY.sub(r"\1***", text)
    for pattern in KEY_PATTERNS.values():  # other providers' keys too (a base URL's server may echo them)
        text = pattern.sub(lambda m: (m.group(1) or m.group(m.lastindex or 1) or "") + "***", text)
    return text


# -- finding secrets and personal data in stored text ------------------------------------

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b")
# 13 to 19 digits, in groups split by single spaces or dashes.
_CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
# Issuer prefixes of the card networks: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro.
_CARD_ISSUERS = re.compile(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6(?:011|5|4[4-9]|2)|35(?:2[89]|[3-8]\d)"
                           r"|3(?:0[0-5]|[689])|5[06-9]|6\d")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_DIGITS = re.compile(r"\d")
# Where a phone number may be: digits with the separators numbers are written with, on one line.
_PHONE_RUN = re.compile(r"[+(]?\d[\d \t().\-/]{5,}\d")

#: A detector: the (start, end) of each match in a text.
_Find = Callable[[str], Iterable[tuple[int, int]]]


@dataclass(frozen=True)
class Finding:
    """One match in a text: which detector found it, and where (``text[start:end]``)."""

    detector: str
    start: int
    end: int


def _keys(name: str) -> _Find:
    pattern = KEY_PATTERNS[name]
    return lambda text: ((m.start(), m.end()) for m in pattern.finditer(text))


def _matches(pattern: re.Pattern[str]) -> _Find:
    """A user's pattern as a detector (an empty match finds nothing)."""
    return lambda text: ((m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start())


def _emails(text: str) -> Iterator[tuple[int, int]]:
    if "@" in text:
        yield from ((m.start(), m.end()) for m in _EMAIL.finditer(text))


def _cards(text: str) -> Iterator[tuple[int, int]]:
    from stdnum import luhn

    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _CARD_ISSUERS.match(digits) and luhn.is_valid(digits):
            yield m.start(), m.end()


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    from stdnum import iban

    for m in _IBAN.finditer(text):
        candidate = m.group()
        # The pattern may run on into the next word ("... 00 BY"): drop trailing groups until it checks out.
        while len(candidate.replace(" ", "")) >= 15:
            if iban.is_valid(candidate.upper()):
                yield m.start(), m.start() + len(candidate)
                break
            cut = candidate.rfind(" ")
            if cut < 0:
                break
            candidate = candidate[:cut]


def _phones(region: str | None) -> _Find:
    def find(text: str) -> Iterator[tuple[int, int]]:
        import phonenumbers

        # The matcher is slow on long text: it reads only runs of 7 digits or more (and a little around them).
        for candidate in _PHONE_RUN.finditer(text):
            if len(_DIGITS.findall(candidate.group())) < 7:
                continue
            start = max(0, candidate.start() - 3)
            window = text[start:candidate.end() + 3]
            for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID):
                yield start + match.start, start + match.end
    return find


#: The built-in detectors, in the order they win when two find overlapping text.
DETECTORS = (*KEY_PATTERNS, "iban", "card", "email", "phone")


class Redactor:
    """Finds secrets and personal data in text, and replaces each with ``[redacted:DETECTOR]``.

    ``detectors`` picks built-in ones by name (default: all of :data:`DETECTORS`);
    ``patterns`` adds regular expressions of your own (each match becomes
    ``[redacted]``); ``phone_region`` is the country whose national phone
    numbers are recognised without a ``+`` prefix (numbers written with one
    are found whatever it is). Where matches overlap, the one that starts
    first wins, then the longer one.
    """

    def __init__(self, detectors: Iterable[str] | None = None, *, patterns: Sequence[str] = (),
                 phone_region: str | None = "US") -> None:
        chosen = list(DETECTORS if detectors is None else detectors)
        unknown = [name for name in chosen if name not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detector {unknown[0]!r}: choose from {', '.join(DETECTORS)}")
        finders: dict[str, _Find] = {name: _keys(name) for name in KEY_PATTERNS}
        finders.update(iban=_ibans, card=_cards, email=_emails, phone=_phones(phone_region))
        self._finders: list[tuple[str, _Find]] = [(name, finders[name]) for name in DETECTORS if name in chosen]
        for pattern in patterns:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
            self._finders.append((f"/{pattern}/", _matches(compiled)))
        #: The detectors in use, built-in ones first, in the order they win overlaps.
        self.names = [name for name, _ in self._finders]
        self._rank = {name: rank for rank, name in enumerate(self.names)}

    def find(self, text: str) -> list[Finding]:
        """Every match, without overlaps, in the order they appear."""
        if not text:
            return []
        found = [Finding(name, start, end) for name, finder in self._finders for start, end in finder(text)]
        found.sort(key=lambda f: (f.start, -(f.end - f.start), self._rank[f.detector]))
        kept: list[Finding] = []
        for finding in found:
            if not kept or finding.start >= kept[-1].end:
                kept.append(finding)
        return kept

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """``text`` with every match replaced, and how many each detector found."""
        findings = self.find(text)
        if not findings:
            return text, Counter()
        parts, last = [], 0
        for finding in findings:
            parts += [text[last:finding.start], self.replacement(finding.detector)]
            last = finding.end
        parts.append(text[last:])
        return "".join(parts), Counter(f.detector for f in findings)

    @staticmethod
    def replacement(detector: str) -> str:
        """What stands in for a match: ``[redacted:email]``, or ``[redacted]`` for a pattern of your own."""
        return "[redacted]" if detector.startswith("/") else f"[redacted:{detector}]"
