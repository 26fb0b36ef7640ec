"""Identifier normalisation, property-based: any value a channel may send either becomes one canonical
value that fits its column or is refused with InvalidIdentifier; the canonical value is stable (the
lookup normalises what it is given again); every form of a phone number or an email address leads to
the same identifier; placeholder values never link anyone."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from parcours.identity.kinds import MAX_VALUE_LENGTH, InvalidIdentifier, KindRegistry
from parcours.models import Identifier
from tests.conftest import Api

DEFAULT_KINDS = (
    "user_id",
    "pos_customer_id",
    "loyalty_card",
    "email",
    "phone",
    "whatsapp",
    "messenger",
    "instagram",
    "anonymous_id",
)


def test_the_migrations_install_the_default_kinds(registry: KindRegistry) -> None:
    assert sorted(registry.rules) == sorted(DEFAULT_KINDS)


# Text that stresses normalisers: case mappings that lengthen ("ß" -> "SS", "ﬃ" -> "FFI", "İ" -> "i̇"),
# separators, "@", digits, placeholders.
TRICKY_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("ßﬃİ@.-+ 0123456789()/aZé\t")),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    max_size=400,
)
# Addresses with non-ASCII local parts go through email-validator rather than the plain-ASCII fast path.
UNICODE_EMAILS = st.builds(
    "{}@{}.fr".format,
    st.text(alphabet=st.sampled_from(list("aZéÅßİΩK.+-_0ﬃ")), min_size=1, max_size=12),
    st.text(alphabet=st.sampled_from(list("abcäö-")), min_size=1, max_size=10),
)
RAW_VALUES = st.one_of(
    TRICKY_TEXT,
    UNICODE_EMAILS,
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(["ß" * 200, "ﬃ" * 120, "İ" * 200, "@" * 5 + "x", "0000", "+33 6 12 34 56 78"]),
)


@hsettings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(DEFAULT_KINDS), raw=RAW_VALUES)
@example(kind="loyalty_card", raw="ß" * 200).via("lengthened past the column by upper-casing")
@example(kind="instagram", raw="İ" * 200).via("lengthened past the column by lower-casing")
def test_a_value_is_refused_or_becomes_one_stable_value_that_fits(
    registry: KindRegistry, kind: str, raw: str | int
) -> None:
    try:
        value = registry.normalize(kind, raw)
    except InvalidIdentifier as error:
        assert str(error), "a refusal says why"
        return
    assert len(value) <= MAX_VALUE_LENGTH  # fits identifiers.value (VARCHAR(320) on PostgreSQL)
    assert value == value.strip()
    assert registry.normalize(kind, value) == value  # what is stored is found again as it is
    reason = registry.blocked_reason(kind, value)
    if reason is None:
        assert value, "an empty value is never usable"
    else:
        assert repr(value) in reason


@hsettings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(DEFAULT_KINDS), raw=st.one_of(st.none(), st.booleans(), st.floats()))
def test_a_value_that_is_not_text_or_a_whole_number_is_refused(
    registry: KindRegistry, kind: str, raw: object
) -> None:
    with pytest.raises(InvalidIdentifier, match="must be a string"):
        registry.normalize(kind, raw)


@hsettings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(DEFAULT_KINDS),
    zeros=st.lists(st.sampled_from(["0", " ", "-", ".", "(", ")", "/"]), min_size=1, max_size=12),
    plus=st.booleans(),
)
def test_an_all_zero_number_is_a_placeholder_for_every_kind(
    registry: KindRegistry, kind: str, zeros: list[str], plus: bool
) -> None:
    text = ("+" if plus else "") + "0" + "".join(zeros)
    try:
        value = registry.normalize(kind, text)
    except InvalidIdentifier:
        return  # email and phone refuse it as malformed before it could link anyone
    assert registry.blocked_reason(kind, value) is not None


# French mobile numbers (06 and 07 73-79), in every way people write them.
FRENCH_MOBILES = st.one_of(
    st.integers(min_value=0, max_value=99_999_999).map(lambda n: f"6{n:08d}"),
    st.integers(min_value=73, max_value=79).flatmap(
        lambda prefix: st.integers(min_value=0, max_value=999_999).map(lambda n: f"{prefix}{n:07d}")
    ),
)


def written_forms(national: str) -> list[str]:
    """``612345678`` as people type it: 06 12 34 56 78, 06.12.34.56.78, +33 6 12 34 56 78, …"""
    pairs = " ".join(national[i : i + 2] for i in range(1, 9, 2))
    return [
        f"0{national}",
        f"0{national[0]} {pairs}",
        f"0{national[0]}.{pairs.replace(' ', '.')}",
        f"0{national[0]}-{pairs.replace(' ', '-')}",
        f"+33{national}",
        f"+33 {national[0]} {pairs}",
        f"+33 (0){national[0]} {pairs}",
        f"0033{national}",
        f"  0{national}  ",
    ]


@hsettings(max_examples=200, deadline=None)
@given(national=FRENCH_MOBILES, kind=st.sampled_from(["phone", "whatsapp"]))
def test_every_written_form_of_a_phone_number_is_one_identifier(
    registry: KindRegistry, national: str, kind: str
) -> None:
    assume(phonenumbers.is_valid_number(phonenumbers.parse(f"+33{national}")))
    values = {registry.normalize(kind, form) for form in written_forms(national)}
    assert values == {f"+33{national}"}
    assert registry.normalize(kind, f"{kind}:+33{national}") == f"+33{national}"  # Twilio's form


LOCAL_PART = st.from_regex(r"\A[a-zA-Z0-9](?:[a-zA-Z0-9._+-]{0,20}[a-zA-Z0-9])?\Z").filter(
    lambda local: ".." not in local
)
DOMAIN = st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9-]{0,15}[a-zA-Z0-9]\.(?:fr|com|co\.uk|paris)\Z")


@hsettings(max_examples=200, deadline=None)
@given(local=LOCAL_PART, domain=DOMAIN, case=st.sampled_from([str.upper, str.lower, str.title, str]))
def test_an_email_address_is_one_identifier_whatever_its_case_and_spacing(
    registry: KindRegistry, local: str, domain: str, case: object
) -> None:
    assume("--" not in domain)
    address = f"{local}@{domain}"
    expected = address.lower()
    assert callable(case)
    for form in (address, case(address), f"  {address}\t"):
        assert registry.normalize("email", form) == expected


@pytest.fixture
def ana(api: Api) -> tuple[Api, str]:
    """Ana, known by her phone number, sent once the way a store till writes it."""
    key = api.source("till", "store")
    response = api.send(key, "/v1/identify", {"userId": "ana-1", "traits": {"phone": "06 12 34 56 78"}})
    assert response.status_code == 200, response.text
    with api.db.read() as session:
        [profile_id] = session.query(Identifier.profile_id).filter_by(kind="user_id", value="ana-1").one()
    return api, profile_id


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.sampled_from(written_forms("612345678")))
def test_the_lookup_finds_a_profile_by_any_form_of_its_phone_number(ana: tuple[Api, str], form: str) -> None:
    api, profile_id = ana
    found = api.get("/v1/profiles", identifier=f"phone:{form}")
    assert found.status_code == 200, found.text
    assert found.json()["id"] == profile_id
