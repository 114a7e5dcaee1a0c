"""DigiD levels of assurance ("betrouwbaarheidsniveaus") and their SAML class references.

The order is the order of strength: a service that requires `substantieel` accepts
`substantieel` and `hoog`, and refuses `basis` and `midden`.
"""

from __future__ import annotations

import enum
from typing import Self

from identity.digid.errors import UnknownLevelOfAssurance

__all__ = ["CLASS_REF_PREFIX", "LevelOfAssurance"]

CLASS_REF_PREFIX = "urn:oasis:names:tc:SAML:2.0:ac:classes:"

# Declaration order is strength order; `rank` relies on it.
_CLASS_SUFFIXES = {
    "basis": "PasswordProtectedTransport",
    "midden": "MobileTwoFactorContract",
    "substantieel": "Smartcard",
    "hoog": "SmartcardPKI",
}


@enum.unique
class LevelOfAssurance(enum.Enum):
    """A DigiD level of assurance; the value is its Dutch name as used in configuration."""

    BASIS = "basis"
    MIDDEN = "midden"
    SUBSTANTIEEL = "substantieel"
    HOOG = "hoog"

    @property
    def class_ref(self) -> str:
        """The AuthnContextClassRef DigiD uses for this level."""
        return CLASS_REF_PREFIX + _CLASS_SUFFIXES[self.value]

    @property
    def rank(self) -> int:
        """0 for basis up to 3 for hoog."""
        return list(_CLASS_SUFFIXES).index(self.value)

    def satisfies(self, required: LevelOfAssurance) -> bool:
        """True if a login at this level is good enough where `required` is demanded."""
        return self.rank >= required.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, LevelOfAssurance):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, LevelOfAssurance):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, LevelOfAssurance):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, LevelOfAssurance):
            return NotImplemented
        return self.rank >= other.rank

    @classmethod
    def parse(cls, name: str) -> Self:
        """The level called `name` (case-insensitive); raises UnknownLevelOfAssurance."""
        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(level.value for level in cls)
            raise UnknownLevelOfAssurance(
                f"unknown level of assurance {name!r}; expected one of {known}"
            ) from None

    @classmethod
    def from_class_ref(cls, class_ref: str) -> Self:
        """The level whose AuthnContextClassRef is exactly `class_ref`.

        Raises UnknownLevelOfAssurance, naming the value, for any other class reference.
        """
        for level in cls:
            if level.class_ref == class_ref:
                return level
        raise UnknownLevelOfAssurance(
            f"unknown AuthnContextClassRef {class_ref[:200]!r}; "
            f"DigiD levels use {CLASS_REF_PREFIX}" + "{" + ",".join(_CLASS_SUFFIXES.values()) + "}"
        )
