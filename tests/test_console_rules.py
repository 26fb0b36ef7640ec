"""The identity graph's rules, reasons and refusals in the console's words: every form the resolver
writes (``identity/resolution.py``) said again in French and English; any other text shown as stored."""

from __future__ import annotations

import pytest

from parcours.console.customers.rules import reason_text, refusal_text, rule_text
from parcours.console.i18n import Translator

FRENCH = Translator("fr", "Europe/Paris")
ENGLISH = Translator("en", "Europe/Paris")


@pytest.mark.parametrize(
    ("stored", "french"),
    [
        ("limit user_id: 1 per profile", "Limite Identifiant de compte : 1 par client"),
        ("limit email: 1, shoe_size: 2", "Limites atteintes : E-mail : 1, shoe_size : 2"),
        ("merges disabled", "Fusion désactivée"),
        ("unmerged pair", "Séparés par une défusion"),
        ("shared identifier", "Identifiant partagé"),
        ("merged by hand by Ana: same card: checked", "Fusionné à la main par Ana : same card: checked"),
        ("merged by hand by API token ops", "Fusionné à la main par API token ops"),
        ("match review mrv_1 (0.973)", "Revue de correspondance mrv_1 acceptée (probabilité 0.973)"),
        ("a rule of a newer version", "a rule of a newer version"),
    ],
)
def test_rules(stored: str, french: str) -> None:
    assert rule_text(FRENCH, stored) == french


@pytest.mark.parametrize(
    ("stored", "french"),
    [
        (
            "the profile holding this event's other identifiers already has 1 user_id; a new profile was started",
            "Le client qui détient les autres identifiants de cet événement a déjà autant d\u2019identifiants de "
            "type Identifiant de compte qu\u2019un client peut en avoir (1) : l\u2019événement a créé un nouveau client.",
        ),
        ("merging is turned off", "La fusion est désactivée."),
        (
            "profiles prf_a and prf_b were unmerged and are kept apart",
            "Les clients prf_a et prf_b ont été défusionnés et restent séparés.",
        ),
        (
            "merging would give one profile 3 email (limit 2)",
            "La fusion donnerait à un client 3 identifiants de type E-mail (la limite est de 2).",
        ),
        (
            "identifiers not attached because the profile already holds its limit of anonymous_id, email; "
            "not attached: anonymous_id:d-3, email:c@shop.fr",
            "Identifiants non rattachés : le client a déjà atteint sa limite de Identifiant d\u2019appareil ou de "
            "navigateur, E-mail. Non rattachés : anonymous_id:d-3, email:c@shop.fr.",
        ),
        (
            "merging would give one profile 2 user_id (limit 1); not attached: email:x@shop.fr",
            "La fusion donnerait à un client 2 identifiants de type Identifiant de compte (la limite est de 1). "
            "Non rattachés : email:x@shop.fr.",
        ),
        ("", ""),
    ],
)
def test_reasons(stored: str, french: str) -> None:
    assert reason_text(FRENCH, stored) == french


@pytest.mark.parametrize(
    ("stored", "french"),
    [
        ("the two profiles are already one", "ils ne font déjà plus qu\u2019un seul client"),
        (
            "the profiles hold different user_id identifiers, and a profile holds at most one (the user_id "
            "limit): they are two different customers",
            "ils ont des identifiants de type Identifiant de compte différents, et un client n\u2019en a qu\u2019un au "
            "plus : ce sont deux personnes différentes",
        ),
        (
            "merging would give one profile 6 email identifiers, over the limit of 5 "
            "(PATCH /v1/identity/kinds/email changes it)",
            "la fusion donnerait à un client 6 identifiants de type E-mail, au-delà de la limite de 5 (un "
            "administrateur peut la relever sur la page des types d\u2019identifiants)",
        ),
        ("the profiles were kept apart by an unmerge", "ils ont été séparés par une défusion"),
    ],
)
def test_refusals(stored: str, french: str) -> None:
    assert refusal_text(FRENCH, stored) == french


def test_english_uses_the_consoles_names_for_kinds() -> None:
    assert rule_text(ENGLISH, "limit loyalty_card: 1 per profile") == "Limit of Loyalty card: 1 per customer"
    assert reason_text(ENGLISH, "merging is turned off; not attached: email:a@b.fr") == (
        "Merging is turned off. Not attached: email:a@b.fr."
    )
