"""What is said of a user or an organization beyond its name: email, full name or label,
contact, URL, company, organization type.

Algorithmia's API carries these; Algora keeps them, shows them and never acts on them.
Organization types are Algorithmia's three, recorded and not enforced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from algora.db.tables import Principal, PrincipalProfile, utcnow
from algora.db.views import view_of
from algora.errors import InvalidInput

__all__ = ["EMAIL_PATTERN", "ORG_TYPES", "URL_PATTERN", "ProfileChange", "ProfileView"]

ORG_TYPES = ("basic", "legacy", "pro")
EMAIL_PATTERN = re.compile(r"^[^\s\x1c-\x1f\x85]*@[^\s\x1c-\x1f\x85]*\Z")
"""An email address, as far as Algora checks one: an ``@`` and no whitespace (the separators
and NEL named too: Python counts them as whitespace, JSON Schema's patterns do not)."""
URL_PATTERN = re.compile(r"^https?://")
"""A profile's URL: http or https."""


@dataclass(frozen=True)
class ProfileView:
    email: str = ""
    full_name: str = ""
    """A user's full name, or an organization's label."""
    contact_name: str = ""
    url: str = ""
    company_name: str = ""
    company_role: str = ""
    org_type: str = ""
    """"" when never set."""


@dataclass(frozen=True)
class ProfileChange:
    """New values for a profile; a field left None is unchanged."""

    email: str | None = None
    full_name: str | None = None
    contact_name: str | None = None
    url: str | None = None
    company_name: str | None = None
    company_role: str | None = None
    org_type: str | None = None

    def check(self) -> None:
        """Raise InvalidInput unless the email, URL and type are well formed."""
        if self.email and not EMAIL_PATTERN.match(self.email):
            raise InvalidInput(f"'{self.email}' is not an email address")
        if self.url and not URL_PATTERN.match(self.url):
            raise InvalidInput("org_url is an http:// or https:// URL")
        if self.org_type is not None and self.org_type not in ORG_TYPES:
            raise InvalidInput(
                f"type_id '{self.org_type}' is not an organization type: use one of "
                f"{', '.join(ORG_TYPES)} (GET /v1/organization/types)"
            )


def apply_profile(session: Session, principal: Principal, change: ProfileChange) -> ProfileView:
    """Write the change into the principal's profile (created on first use), uncommitted."""
    row = session.get(PrincipalProfile, principal.id)
    if row is None:
        row = PrincipalProfile(
            principal_id=principal.id,
            email="",
            full_name="",
            contact_name="",
            url="",
            company_name="",
            company_role="",
            org_type="",
        )
        session.add(row)
    for field in (
        "email",
        "full_name",
        "contact_name",
        "url",
        "company_name",
        "company_role",
        "org_type",
    ):
        value = getattr(change, field)
        if value is not None:
            setattr(row, field, value)
    row.updated_at = utcnow()
    return _view(row)


def profile_of(session: Session, principal: Principal) -> ProfileView:
    """The principal's profile; an empty one when it has none."""
    row = session.get(PrincipalProfile, principal.id)
    return ProfileView() if row is None else _view(row)


def _view(row: PrincipalProfile) -> ProfileView:
    return view_of(ProfileView, row)
