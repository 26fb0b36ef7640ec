"""``parcours demo``: a French coffee retailer, its stores, products and customers, fed through the pipeline.

Everything here is generated from a seed (same seed, same population) and sent as Segment-spec messages
to :func:`parcours.ingest.service.ingest_messages`, so identity resolution links the people exactly as it
would in production: an anonymous browser becomes a customer when she signs in, a loyalty card swiped at
a till meets the e-mail typed on the web shop, a caller is recognised by the number the web shop knows.

The retailer's stores and products are plain module-level data (:data:`STORES`, :data:`PRODUCTS`) so the
commerce domain can turn them into real records later without reading this module's logic.
"""

from __future__ import annotations

import contextlib
import random
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import phonenumbers
from sqlalchemy import func, select

from parcours.auth.service import SourceInfo, create_source, create_token
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.errors import ParcoursError
from parcours.identity import service as identity
from parcours.ingest.service import ingest_messages
from parcours.models import Consent, Event, Identifier, IdentityConflict, Merge, Profile

# --------------------------------------------------------------------------------------------- retailer
RETAILER_NAME = "Maison Arabica"
RETAILER_WEBSITE = "https://www.maison-arabica.fr"
CURRENCY = "EUR"
HISTORY_DAYS = 540  # about eighteen months of history, ending at midnight UTC today


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    street: str
    postal_code: str
    city: str
    latitude: float
    longitude: float
    phone: str  # E.164 (ARCEP numbers reserved for fiction: nobody real is called)
    opening_hours: str


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: str  # EUR, VAT included, two decimals

    @property
    def slug(self) -> str:
        return _ascii(self.name).lower().replace(" ", "-").replace("'", "-")

    @property
    def url(self) -> str:
        return f"{RETAILER_WEBSITE}/produits/{self.slug}"


_HOURS = "lun.-sam. 10:00-19:30"
STORES: tuple[Store, ...] = (
    Store("PAR-RIV", "Maison Arabica Paris Rivoli", "112 Rue de Rivoli", "75001", "Paris", 48.8600, 2.3434,
          "+33199000001", _HOURS),
    Store("PAR-MAR", "Maison Arabica Paris Marais", "24 Rue des Francs-Bourgeois", "75003", "Paris", 48.8576,
          2.3610, "+33199000002", "lun.-dim. 11:00-19:30"),
    Store("LYS-REP", "Maison Arabica Lyon République", "58 Rue de la République", "69002", "Lyon", 45.7622,
          4.8358, "+33465710001", _HOURS),
    Store("MRS-CAN", "Maison Arabica Marseille Canebière", "45 La Canebière", "13001", "Marseille", 43.2971,
          5.3790, "+33465710002", _HOURS),
    Store("LIL-NEU", "Maison Arabica Lille Rue Neuve", "31 Rue Neuve", "59000", "Lille", 50.6366, 3.0654,
          "+33353010001", _HOURS),
    Store("BOD-CAT", "Maison Arabica Bordeaux Sainte-Catherine", "90 Rue Sainte-Catherine", "33000",
          "Bordeaux", 44.8394, -0.5732, "+33536490001", _HOURS),
    Store("NTE-CRE", "Maison Arabica Nantes Crébillon", "12 Rue Crébillon", "44000", "Nantes", 47.2130,
          -1.5610, "+33261910001", _HOURS),
    Store("TLS-ALS", "Maison Arabica Toulouse Alsace-Lorraine", "25 Rue d'Alsace-Lorraine", "31000",
          "Toulouse", 43.6035, 1.4453, "+33536490002", _HOURS),
    Store("SXB-ARC", "Maison Arabica Strasbourg Grandes Arcades", "18 Rue des Grandes Arcades", "67000",
          "Strasbourg", 48.5833, 7.7475, "+33353010002", _HOURS),
    Store("NCE-MED", "Maison Arabica Nice Jean-Médecin", "30 Avenue Jean-Médecin", "06000", "Nice", 43.7014,
          7.2681, "+33465710003", _HOURS),
    Store("RNS-BAS", "Maison Arabica Rennes Le Bastard", "9 Rue Le Bastard", "35000", "Rennes", 48.1118,
          -1.6798, "+33261910002", _HOURS),
    Store("MPL-LOG", "Maison Arabica Montpellier La Loge", "14 Rue de la Loge", "34000", "Montpellier",
          43.6104, 3.8775, "+33465710004", _HOURS),
)  # fmt: skip
STORES_BY_ID = {store.id: store for store in STORES}

PRODUCTS: tuple[Product, ...] = (
    Product("MA-EXP-001", "Machine expresso Arabica Pro", "machines", "349.00"),
    Product("MA-CAP-002", "Machine à capsules Lungo Mini", "machines", "99.90"),
    Product("MA-BAR-003", "Machine broyeur Barista Touch", "machines", "599.00"),
    Product("MA-FIL-004", "Cafetière filtre programmable", "machines", "79.90"),
    Product("CA-RIS-010", "Capsules Ristretto Intenso x10", "capsules", "4.20"),
    Product("CA-LUN-011", "Capsules Lungo Forte x10", "capsules", "4.20"),
    Product("CA-DEC-012", "Capsules Décaféiné Velours x10", "capsules", "4.50"),
    Product("CA-VAN-013", "Capsules Vanille Bourbon x10", "capsules", "4.90"),
    Product("CF-ETH-020", "Café en grains Éthiopie Yirgacheffe 250 g", "cafes", "9.90"),
    Product("CF-COL-021", "Café en grains Colombie Huila 1 kg", "cafes", "29.90"),
    Product("CF-BRE-022", "Café moulu Brésil Santos 250 g", "cafes", "7.50"),
    Product("CF-GUA-023", "Café en grains Guatemala Antigua 500 g", "cafes", "17.90"),
    Product("TH-EAR-030", "Thé noir Earl Grey bio 100 g", "thes", "8.90"),
    Product("TH-SEN-031", "Thé vert Sencha 100 g", "thes", "9.50"),
    Product("TH-VER-032", "Infusion verveine menthe 50 g", "thes", "6.90"),
    Product("AC-MOU-040", "Moulin à café manuel en acier", "accessoires", "59.00"),
    Product("AC-MUG-041", "Mug double paroi 35 cl", "accessoires", "19.90"),
    Product("AC-TAS-042", "Coffret 4 tasses expresso en porcelaine", "accessoires", "34.90"),
    Product("AC-DET-043", "Détartrant écologique x2", "accessoires", "12.90"),
    Product("AC-LAI-044", "Mousseur à lait électrique", "accessoires", "69.90"),
    Product("AC-PIS-045", "Cafetière à piston 8 tasses", "accessoires", "32.00"),
    Product("CO-DEC-050", "Coffret découverte 6 origines", "coffrets", "24.90"),
    Product("CO-CAD-051", "Carte cadeau 50 €", "coffrets", "50.00"),
)
PRODUCTS_BY_SKU = {product.sku: product for product in PRODUCTS}
CATEGORY_NAMES = {
    "machines": "Machines",
    "capsules": "Capsules",
    "cafes": "Cafés",
    "thes": "Thés et infusions",
    "accessoires": "Accessoires",
    "coffrets": "Coffrets et cadeaux",
}

# One source per channel the retailer receives events from: (key, name, default channel).
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("web", "Boutique en ligne", "web"),
    ("app", "Application mobile", "app"),
    ("store", "Caisses magasins", "store"),
    ("phone", "Service client", "phone"),
    ("email", "Emailing", "email"),
    ("sms", "SMS", "sms"),
    ("whatsapp", "WhatsApp", "whatsapp"),
    ("instagram", "Instagram shop", "instagram"),
    ("kiosk", "Borne magasin", "kiosk"),
)


# --------------------------------------------------------------------------------------------- people
def _words(text: str) -> tuple[str, ...]:
    return tuple(word.replace("_", " ") for word in text.split())


FEMALE_FIRST_NAMES = _words(
    "Marie Camille Léa Manon Chloé Emma Inès Sarah Julie Laura Pauline Mathilde Clara Anaïs Lucie Charlotte "
    "Élodie Céline Nathalie Isabelle Sandrine Sophie Valérie Christine Catherine Sylvie Anne Aurélie Émilie "
    "Claire Jeanne Louise Alice Juliette Zoé Margaux Océane Justine Agathe Hélène Brigitte Monique Françoise "
    "Martine Nadia Fatima Yasmine Amina Leïla Salomé Romane Lina Jade Ambre Victoire Capucine Apolline Solène"
)
MALE_FIRST_NAMES = _words(
    "Jean Pierre Nicolas Thomas Julien Maxime Alexandre Antoine Hugo Lucas Louis Gabriel Arthur Jules Léo "
    "Raphaël Paul Mathieu Romain Guillaume Sébastien Christophe Stéphane Laurent Olivier Philippe Patrick "
    "Michel Alain Bernard François Frédéric Vincent David Éric Benoît Damien Florian Kévin Quentin Baptiste "
    "Théo Nathan Enzo Mohamed Karim Mehdi Yanis Rayan Adam Noah Sacha Victor Gaspard Clément Adrien Bastien "
    "Yann Loïc Erwan"
)
LAST_NAMES = _words(  # an underscore stands for a space
    "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefèvre Leroy Roux "
    "David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Muller Lefebvre "
    "Faure André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin Robin "
    "Clément Morin Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont Lemaire Noël "
    "Meyer Dufour Meunier Brun Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud Martinez "
    "Gérard Roche Renard Schmitt Roy Leroux Colin Vidal Caron Picard Roger Fabre Aubert Lemoine Renaud Dumas "
    "Lacroix Olivier Bourgeois Benoît Rey Leclerc Payet Rolland Leclercq Guillaume Lecomte Lopez Dupuy "
    "Guillot Hubert Berger Carpentier Sanchez Dupuis Moulin Deschamps Huet Vasseur Perez Boucher Fleury "
    "Royer Klein Jacquet Poirier Marty Aubry Guyot Carré Renault Charpentier Ménard Maillard Baron Bertin "
    "Bailly Hervé Schneider Fernandez Le_Gall Collet Léger Bouvier Prévost Millet Perrot Le_Roux Cousin "
    "Germain Breton Besson Langlois Rémy Le_Goff Pelletier Lévêque Perrier Leblanc Barré Lebrun Marchal "
    "Weber Mallet Hamon Boulanger Monnier Michaud Rodriguez Guichard Gillet Étienne Grondin Poulain Tessier "
    "Chauvin Da_Silva Bouchet Lemaître Maréchal Humbert Reynaud Hoarau Perret Barthélemy Cordier Pichon "
    "Lejeune Gilbert Lamy Delaunay Pasquier Carlier Laporte Nguyen Diallo Benali Haddad Traoré N'Diaye"
)
STREETS = (
    "Rue Victor-Hugo", "Avenue Jean-Jaurès", "Rue de la République", "Boulevard Gambetta", "Rue Pasteur",
    "Rue Jules-Ferry", "Avenue du Général-de-Gaulle", "Rue de la Gare", "Rue Nationale", "Place de l'Église",
    "Rue des Écoles", "Rue du Moulin", "Avenue de la Libération", "Rue Émile-Zola", "Rue Carnot",
    "Rue Voltaire", "Rue de Verdun", "Rue Paul-Bert", "Boulevard de la Liberté", "Rue Lamartine",
    "Rue des Lilas", "Rue Saint-Michel", "Allée des Tilleuls", "Impasse des Roses", "Rue Jean-Moulin",
    "Avenue Foch", "Rue de Paris", "Rue du Château", "Rue des Acacias", "Chemin des Vignes",
    "Rue Anatole-France", "Rue Gambetta", "Cours Lafayette", "Rue du Maréchal-Foch", "Rue Condorcet",
)  # fmt: skip
EMAIL_DOMAINS = (
    ("gmail.com", 34), ("orange.fr", 14), ("hotmail.fr", 10), ("free.fr", 8), ("yahoo.fr", 6),
    ("outlook.fr", 6), ("sfr.fr", 5), ("laposte.net", 5), ("icloud.com", 5), ("wanadoo.fr", 4),
    ("live.fr", 3),
)  # fmt: skip
LANGUAGES = (
    ("fr", "fr-FR", 92),
    ("en", "en-GB", 3),
    ("de", "de-DE", 2),
    ("it", "it-IT", 1),
    ("es", "es-ES", 2),
)


@dataclass(frozen=True)
class Area:
    """Where customers live: towns around one or two stores, and the ARCEP fiction landline block."""

    store_ids: tuple[str, ...]
    weight: int
    towns: tuple[tuple[str, tuple[str, ...]], ...]  # (town, postal codes)
    landline_block: str  # "+3319900": four more digits make a number reserved for fiction


AREAS: tuple[Area, ...] = (
    Area(("PAR-RIV", "PAR-MAR"), 24, (
        ("Paris", tuple(f"750{n:02d}" for n in range(1, 21))), ("Boulogne-Billancourt", ("92100",)),
        ("Montreuil", ("93100",)), ("Versailles", ("78000",)), ("Vincennes", ("94300",)),
        ("Levallois-Perret", ("92300",)),
    ), "+3319900"),
    Area(("LYS-REP",), 11, (
        ("Lyon", tuple(f"6900{n}" for n in range(1, 10))), ("Villeurbanne", ("69100",)),
        ("Caluire-et-Cuire", ("69300",)),
    ), "+3346571"),
    Area(("MRS-CAN",), 9, (
        ("Marseille", tuple(f"130{n:02d}" for n in range(1, 17))), ("Aix-en-Provence", ("13090", "13100")),
    ), "+3346571"),
    Area(("LIL-NEU",), 8, (
        ("Lille", ("59000", "59800")), ("Roubaix", ("59100",)), ("Villeneuve-d'Ascq", ("59650",)),
    ), "+3335301"),
    Area(("BOD-CAT",), 8, (
        ("Bordeaux", ("33000", "33100", "33200", "33300", "33800")), ("Mérignac", ("33700",)),
        ("Pessac", ("33600",)),
    ), "+3353649"),
    Area(("NTE-CRE",), 7, (
        ("Nantes", ("44000", "44100", "44200", "44300")), ("Saint-Herblain", ("44800",)), ("Rezé", ("44400",)),
    ), "+3326191"),
    Area(("TLS-ALS",), 8, (
        ("Toulouse", ("31000", "31100", "31200", "31300", "31400", "31500")), ("Blagnac", ("31700",)),
    ), "+3353649"),
    Area(("SXB-ARC",), 6, (
        ("Strasbourg", ("67000", "67100", "67200")), ("Schiltigheim", ("67300",)),
    ), "+3335301"),
    Area(("NCE-MED",), 6, (
        ("Nice", ("06000", "06100", "06200", "06300")), ("Antibes", ("06600",)), ("Cannes", ("06400",)),
    ), "+3346571"),
    Area(("RNS-BAS",), 6, (
        ("Rennes", ("35000", "35200", "35700")), ("Cesson-Sévigné", ("35510",)),
    ), "+3326191"),
    Area(("MPL-LOG",), 7, (
        ("Montpellier", ("34000", "34070", "34080", "34090")), ("Lattes", ("34970",)),
    ), "+3346571"),
)  # fmt: skip

# Personas: how a customer meets the brand, and which channels their history spans.
WEB_ONLY = "web_only"
STORE_ONLY = "store_only"
ROPO = "ropo"  # research online, purchase offline
SHOWROOMING = "showrooming"  # see it in store, buy it online
APP_MEMBER = "app_member"
SERVICE = "service"  # calls or writes to the service client
MESSAGING = "messaging"  # WhatsApp, Instagram, SMS, e-mail
OMNICHANNEL = "omnichannel"  # known under many identifiers that only their events link
PERSONAS: tuple[tuple[str, int], ...] = (
    (WEB_ONLY, 16),
    (STORE_ONLY, 14),
    (ROPO, 15),
    (SHOWROOMING, 10),
    (APP_MEMBER, 14),
    (SERVICE, 10),
    (MESSAGING, 10),
    (OMNICHANNEL, 11),
)


class DemoError(RuntimeError):
    """The generator produced something the pipeline refused: a bug in the generator."""


@dataclass
class DemoCustomer:
    index: int
    persona: str
    first_name: str
    last_name: str
    gender: str
    email: str
    mobile: str  # E.164
    landline: str | None  # E.164, in an ARCEP fiction block
    loyalty_card: str | None  # EAN-13
    pos_customer_id: str | None
    user_id: str | None
    instagram: str | None
    birthday: date
    street: str
    postal_code: str
    city: str
    language: str
    locale: str
    store: Store
    marketing: bool
    favourite: str  # a product category

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def mobile_national(self) -> str:
        return _national(self.mobile)


# --------------------------------------------------------------------------------------------- helpers
def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _national(e164: str) -> str:
    """+33612345678 -> 06 12 34 56 78."""
    digits = "0" + e164[3:]
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _money(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in choices], weights=[weight for _, weight in choices])[0]


def _ean13(first_twelve: str) -> str:
    total = sum(int(digit) * (3 if position % 2 else 1) for position, digit in enumerate(first_twelve))
    return first_twelve + str((10 - total % 10) % 10)


def _is_valid_phone(e164: str) -> bool:
    return bool(phonenumbers.is_valid_number(phonenumbers.parse(e164, "FR")))


def product_properties(product: Product, **extra: Any) -> dict[str, Any]:
    """A product as Segment's e-commerce spec describes it (the price a string, in EUR)."""
    return {
        "product_id": product.sku,
        "sku": product.sku,
        "name": product.name,
        "category": CATEGORY_NAMES[product.category],
        "price": product.price,
        "currency": CURRENCY,
        **extra,
    }


def _rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --------------------------------------------------------------------------------------------- customers
class _Registry:
    """Values that must be unique across the population (emails, numbers, cards, ids)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def claim(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value
        raise DemoError("could not draw a unique value; too many customers for this generator")


def _make_customer(index: int, rng: random.Random, unique: _Registry, year: int) -> DemoCustomer:
    persona = _weighted(rng, PERSONAS)
    gender = rng.choice(("female", "male"))
    first = rng.choice(FEMALE_FIRST_NAMES if gender == "female" else MALE_FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    age = int(rng.triangular(18, 84, 41))
    birthday = date(year - age, rng.randint(1, 12), rng.randint(1, 28))
    area = rng.choices(AREAS, weights=[a.weight for a in AREAS])[0]
    town, postal_codes = rng.choice(area.towns)
    store = STORES_BY_ID[rng.choice(area.store_ids)]
    language, locale = "fr", "fr-FR"
    roll = rng.randrange(100)
    for code, code_locale, weight in LANGUAGES:
        if roll < weight:
            language, locale = code, code_locale
            break
        roll -= weight

    first_ascii = _ascii(first).lower().replace(" ", "").replace("'", "")
    last_ascii = _ascii(last).lower().replace(" ", "").replace("'", "")

    def email() -> str:
        pattern = rng.randrange(6)
        locals_ = (
            f"{first_ascii}.{last_ascii}",
            f"{first_ascii[0]}{last_ascii}",
            f"{first_ascii}.{last_ascii}{rng.randint(1, 99)}",
            f"{last_ascii}.{first_ascii}",
            f"{first_ascii}{last_ascii}{birthday.year % 100:02d}",
            f"{first_ascii}_{last_ascii[:4]}{rng.randint(10, 999)}",
        )
        return f"{locals_[pattern]}@{_weighted(rng, EMAIL_DOMAINS)}"

    def mobile() -> str:
        while True:
            number = "+33" + rng.choice("667") + "".join(rng.choice("0123456789") for _ in range(8))
            if _is_valid_phone(number):
                return number

    landline = None
    if age > 50 or rng.random() < 0.15:
        candidate = area.landline_block + f"{rng.randint(100, 9999):04d}"
        if candidate not in unique.used:
            unique.used.add(candidate)
            landline = candidate

    has_card = persona in (STORE_ONLY, ROPO, APP_MEMBER, OMNICHANNEL) or rng.random() < 0.3
    has_account = persona != STORE_ONLY or rng.random() < 0.1
    instagram = None
    if age < 45 and (persona == MESSAGING or rng.random() < 0.2):
        instagram = unique.claim(lambda: f"@{first_ascii}.{last_ascii[:3]}{rng.randint(1, 999)}")
    return DemoCustomer(
        index=index,
        persona=persona,
        first_name=first,
        last_name=last,
        gender=gender,
        email=unique.claim(email),
        mobile=unique.claim(mobile),
        landline=landline,
        loyalty_card=unique.claim(lambda: _ean13("290" + f"{rng.randrange(10**9):09d}"))
        if has_card
        else None,
        pos_customer_id=unique.claim(lambda: f"C{rng.randrange(10**8):08d}") if has_card else None,
        user_id=unique.claim(lambda: f"MA{rng.randrange(10**7):07d}") if has_account else None,
        instagram=instagram,
        birthday=birthday,
        street=f"{rng.randint(1, 140)} {rng.choice(STREETS)}",
        postal_code=rng.choice(postal_codes),
        city=town,
        language=language,
        locale=locale,
        store=store,
        marketing=rng.random() < 0.62,
        favourite=rng.choice(("machines", "capsules", "capsules", "cafes", "cafes", "thes", "accessoires")),
    )


# --------------------------------------------------------------------------------------------- journeys
class _Done(Exception):
    """The journey reached the present: nothing more happens to this customer."""


@dataclass
class _Pending:
    timestamp: datetime
    seq: int
    source: str
    message: dict[str, Any]


@dataclass
class _World:
    start: datetime
    end: datetime
    pending: list[_Pending] = field(default_factory=list)
    seq: Iterator[int] = field(default_factory=count)
    order_numbers: Iterator[int] = field(default_factory=lambda: count(100_001))
    calls: Iterator[int] = field(default_factory=lambda: count(500_001))


_DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_MOBILE_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile "
    "Safari/537.36",
)
_APP_DEVICES = (
    ({"manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"}, {"name": "iOS", "version": "17.4"}),
    ({"manufacturer": "Apple", "model": "iPhone13,2", "type": "ios"}, {"name": "iOS", "version": "16.7"}),
    (
        {"manufacturer": "samsung", "model": "SM-S911B", "type": "android"},
        {"name": "Android", "version": "14"},
    ),
    ({"manufacturer": "Google", "model": "Pixel 7", "type": "android"}, {"name": "Android", "version": "14"}),
    (
        {"manufacturer": "Xiaomi", "model": "2201117TY", "type": "android"},
        {"name": "Android", "version": "13"},
    ),
)
_CALL_REASONS = (
    ("suivi_commande", "Où en est ma commande ?"),
    ("panne_machine", "Ma machine ne chauffe plus"),
    ("retour", "Je souhaite retourner un article"),
    ("fidelite", "Mes points fidélité n'apparaissent pas"),
    ("conseil", "Quel café pour ma machine ?"),
    ("facturation", "Double prélèvement sur ma carte"),
)
_AGENTS = ("Sonia", "Karim", "Audrey", "Thibault", "Nadège", "Malik", "Hélène")
_SEARCHES = ("capsules compatibles", "décaféiné", "moulin", "machine à grain", "thé vert", "coffret cadeau")


class _Journey:
    """One customer's life with the brand: a clock that only moves forward and the messages sent."""

    def __init__(self, world: _World, customer: DemoCustomer, rng: random.Random, start: datetime) -> None:
        self.world = world
        self.c = customer
        self.rng = rng
        self.t = start
        self.browsers: list[tuple[str, str]] = []  # (anonymousId, user agent), reused across visits
        self.app_device: tuple[str, dict[str, str], dict[str, str]] | None = None
        self.app_logged_in = False
        # When the brand learnt something: "email", "phone", "account", "opt_in" (marketing), "sms_stop", …
        self.since: dict[str, datetime] = {}
        self.card_enrolled = False
        self.unsubscribed = False

    # ------------------------------------------------------------------ time
    def minutes(self, low: float, high: float) -> None:
        self.t += timedelta(minutes=self.rng.uniform(low, high))

    def days(self, low: float, high: float, hours: tuple[int, int] = (6, 21)) -> None:
        """Jump some days ahead to a time of day (UTC) when this kind of thing happens."""
        day = (self.t + timedelta(days=self.rng.uniform(low, high))).date()
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            hours=self.rng.randint(hours[0], hours[1] - 1),
            minutes=self.rng.randint(0, 59),
            seconds=self.rng.randint(0, 59),
        )
        self.t = max(moment, self.t + timedelta(minutes=10))
        if self.t > self.world.end:
            raise _Done

    # ------------------------------------------------------------------ sending
    def emit(self, source: str, message: dict[str, Any]) -> None:
        if self.t > self.world.end:
            raise _Done
        message["messageId"] = _rng_uuid(self.rng)
        message["timestamp"] = _iso(self.t)
        self.world.pending.append(_Pending(self.t, next(self.world.seq), source, message))
        self.t += timedelta(seconds=self.rng.randint(5, 90))

    def track(
        self, source: str, event: str, properties: dict[str, Any], context: dict[str, Any], **ids: Any
    ) -> None:
        self.emit(
            source, {"type": "track", "event": event, "properties": properties, "context": context, **ids}
        )

    # ------------------------------------------------------------------ identifiers as each system sees them
    def card_spaced(self) -> str:
        card = self.c.loyalty_card or ""
        return " ".join(card[i : i + 4] for i in range(0, len(card), 4))

    def external(self, *pairs: tuple[str, str | None]) -> list[dict[str, str]]:
        return [
            {"id": value, "type": kind, "collection": "users", "encoding": "none"}
            for kind, value in pairs
            if value is not None
        ]

    def full_traits(self, *, phone: bool = True, card: bool = False) -> dict[str, Any]:
        c = self.c
        traits: dict[str, Any] = {
            "firstName": c.first_name,
            "lastName": c.last_name,
            "email": c.email if self.rng.random() < 0.85 else c.email.capitalize(),
            "birthday": c.birthday.isoformat(),
            "gender": c.gender,
            "address": {"street": c.street, "postalCode": c.postal_code, "city": c.city, "country": "FR"},
            "language": c.language,
            "preferredStore": c.store.id,
        }
        if phone:
            traits["phone"] = c.mobile if self.rng.random() < 0.6 else c.mobile_national
            self.learn("phone")
        if card and c.loyalty_card:
            traits["loyaltyCard"] = self.card_spaced()
        return traits

    def consent(self) -> dict[str, Any]:
        """What the customer ticks on a sign-up form (the same answer everywhere)."""
        if self.c.marketing:
            self.learn("opt_in")
        return {"categoryPreferences": {"marketing": self.c.marketing, "analytics": True}}

    def learn(self, *facts: str) -> None:
        for fact in facts:
            self.since.setdefault(fact, self.t)

    def knows(self, fact: str, at: datetime | None = None) -> bool:
        return fact in self.since and self.since[fact] <= (at or self.t)

    def note_email(self) -> None:
        self.learn("email")

    # ------------------------------------------------------------------ catalogue
    def favourite_products(self, how_many: int) -> list[Product]:
        liked = [p for p in PRODUCTS if p.category == self.c.favourite]
        others = [p for p in PRODUCTS if p.category != self.c.favourite]
        picked: list[Product] = []
        while len(picked) < how_many:
            pool = liked if self.rng.random() < 0.7 else others
            product = self.rng.choice(pool)
            if product not in picked:
                picked.append(product)
        return picked

    def basket(self, around: Product | None = None) -> list[tuple[Product, int]]:
        items: list[tuple[Product, int]] = []
        if around is not None:
            items.append((around, 1))
        for product in self.favourite_products(self.rng.randint(1, 3)):
            if product not in [p for p, _ in items]:
                quantity = self.rng.randint(2, 8) if product.category == "capsules" else 1
                items.append((product, quantity))
        return items[:4]

    def order_properties(
        self, order_id: str, items: list[tuple[Product, int]], *, shipping: Decimal, affiliation: str
    ) -> dict[str, Any]:
        subtotal = sum((Decimal(p.price) * q for p, q in items), Decimal("0"))
        discount = Decimal("0")
        coupon = None
        if self.c.loyalty_card and self.rng.random() < 0.2:
            discount = Decimal("5.00")
            coupon = "FIDELITE5"
        elif self.rng.random() < 0.08:
            discount = (subtotal * Decimal("0.10")).quantize(Decimal("0.01"))
            coupon = "BIENVENUE10"
        total = subtotal - discount + shipping
        properties: dict[str, Any] = {
            "order_id": order_id,
            "affiliation": affiliation,
            "subtotal": _money(subtotal),
            "shipping": _money(shipping),
            "discount": _money(discount),
            "total": _money(total),
            "revenue": _money(subtotal - discount),
            "currency": CURRENCY,
            "products": [product_properties(p, quantity=q) for p, q in items],
        }
        if coupon:
            properties["coupon"] = coupon
        return properties

    def order_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.world.order_numbers)}"

    # ------------------------------------------------------------------ web shop
    def browser(self, mobile: bool | None = None) -> tuple[str, str]:
        if self.browsers and (mobile is None or self.rng.random() < 0.75):
            return self.rng.choice(self.browsers)
        is_mobile = self.rng.random() < 0.55 if mobile is None else mobile
        agent = self.rng.choice(_MOBILE_AGENTS if is_mobile else _DESKTOP_AGENTS)
        pair = (_rng_uuid(self.rng), agent)
        self.browsers.append(pair)
        return pair

    def web_context(self, agent: str, path: str, title: str, referrer: str = "") -> dict[str, Any]:
        return {
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "locale": self.c.locale,
            "userAgent": agent,
            "page": {"path": path, "url": RETAILER_WEBSITE + path, "title": title, "referrer": referrer},
        }

    def web_ids(self, anon: str, user_id: str | None) -> dict[str, str]:
        return {"anonymousId": anon, "userId": user_id} if user_id else {"anonymousId": anon}

    def web_visit(
        self,
        browser: tuple[str, str],
        *,
        user_id: str | None = None,
        products: list[Product] | None = None,
        add: bool = False,
        campaign: str | None = None,
    ) -> list[Product]:
        anon, agent = browser
        ids = self.web_ids(anon, user_id)
        referrer = self.rng.choice(
            ("https://www.google.fr/", "https://www.google.fr/", "https://www.instagram.com/", "")
        )
        context = self.web_context(agent, "/", f"{RETAILER_NAME} - Cafés, thés et machines", referrer)
        if campaign:
            context["campaign"] = {"source": "newsletter", "medium": "email", "name": campaign}
        self.emit(
            "web", {"type": "page", "name": "Accueil", "properties": {"path": "/"}, "context": context, **ids}
        )
        viewed = products or self.favourite_products(self.rng.randint(1, 3))
        if self.rng.random() < 0.25:
            self.minutes(0.2, 2)
            query = self.rng.choice(_SEARCHES)
            context = self.web_context(agent, f"/recherche?q={query}", "Recherche")
            self.track("web", "Products Searched", {"query": query}, context, **ids)
        for product in viewed:
            self.minutes(0.3, 4)
            path = f"/produits/{product.slug}"
            properties = product_properties(product, url=product.url)
            self.track(
                "web", "Product Viewed", properties, self.web_context(agent, path, product.name), **ids
            )
        if add:
            product = viewed[0]
            self.minutes(0.2, 3)
            properties = product_properties(product, quantity=1)
            path = f"/produits/{product.slug}"
            self.track("web", "Product Added", properties, self.web_context(agent, path, product.name), **ids)
        return viewed

    def web_identify(
        self,
        browser: tuple[str, str],
        *,
        user_id: str | None,
        card: bool = False,
        phone: bool = True,
        path: str = "/compte/creation",
    ) -> None:
        anon, agent = browser
        message: dict[str, Any] = {
            "type": "identify",
            "traits": self.full_traits(phone=phone, card=card),
            "context": {**self.web_context(agent, path, "Mon compte"), "consent": self.consent()},
            **self.web_ids(anon, user_id),
        }
        if user_id:
            message["traits"]["createdAt"] = _iso(self.t)
            self.learn("account")
        self.emit("web", message)
        self.note_email()

    def web_order(
        self, browser: tuple[str, str], user_id: str | None, items: list[tuple[Product, int]]
    ) -> str:
        anon, agent = browser
        ids = self.web_ids(anon, user_id)
        order_id = self.order_id("W")
        delivery = self.rng.choice(("domicile", "domicile", "point_relais", "retrait_magasin"))
        subtotal = sum((Decimal(p.price) * q for p, q in items), Decimal("0"))
        shipping = Decimal("0.00")
        if delivery == "domicile" and subtotal < Decimal("49.00"):
            shipping = Decimal("4.90")
        elif delivery == "point_relais" and subtotal < Decimal("49.00"):
            shipping = Decimal("2.90")
        self.minutes(1, 6)
        context = self.web_context(agent, "/commande", "Commande")
        properties = self.order_properties(
            order_id, items, shipping=shipping, affiliation="Boutique en ligne"
        )
        self.track(
            "web", "Checkout Started", {k: v for k, v in properties.items() if k != "coupon"}, context, **ids
        )
        self.minutes(1, 5)
        properties["delivery_method"] = delivery
        properties["payment_method"] = self.rng.choice(
            ("carte_bancaire", "carte_bancaire", "paypal", "apple_pay")
        )
        if delivery == "retrait_magasin":
            properties["store_id"] = self.c.store.id
        context = self.web_context(agent, "/commande/confirmation", "Merci pour votre commande")
        self.track("web", "Order Completed", properties, context, **ids)
        self.after_order(order_id, delivery)
        return order_id

    def after_order(self, order_id: str, delivery: str) -> None:
        """The transactional e-mail and the dispatch SMS any order triggers."""
        moment = self.t
        self.minutes(1, 3)
        self.track(
            "email",
            "Email Delivered",
            {
                "email_id": f"conf-{order_id}",
                "email_subject": f"Votre commande {order_id} est confirmée",
                "campaign_name": "Transactionnel - confirmation",
            },
            {"externalIds": self.external(("email", self.c.email))},
        )
        if self.knows("phone") and self.rng.random() < 0.7:
            self.t = moment + timedelta(hours=self.rng.uniform(18, 40))
            text = (
                f"Maison Arabica : votre commande {order_id} est prête en magasin."
                if delivery == "retrait_magasin"
                else f"Maison Arabica : votre commande {order_id} a été expédiée."
            )
            self.track(
                "sms",
                "SMS Sent",
                {"template": "expedition", "body": text, "order_id": order_id},
                {"externalIds": self.external(("phone", self.c.mobile))},
            )
        self.t = max(self.t, moment)

    # ------------------------------------------------------------------ stores
    def store_context(self, store: Store, register: int, *extra: tuple[str, str | None]) -> dict[str, Any]:
        return {
            "library": {"name": "caisse-arabica", "version": "3.8.2"},
            "location": {
                "city": store.city,
                "country": "France",
                "latitude": store.latitude,
                "longitude": store.longitude,
            },
            "device": {"id": f"{store.id}-CAISSE-{register}", "type": "pos"},
            "externalIds": self.external(*extra),
        }

    def store_enrol(self, store: Store, *, phone: bool = False) -> None:
        """The associate creates a loyalty card at the till."""
        c = self.c
        traits: dict[str, Any] = {
            "firstName": c.first_name,
            "lastName": c.last_name,
            "loyaltyCard": c.loyalty_card,
            "posCustomerId": c.pos_customer_id,
            "postalCode": c.postal_code,
            "birthday": c.birthday.isoformat(),
            "loyaltyProgram": "Club Arabica",
        }
        if phone:
            traits["phone"] = c.mobile_national
            self.learn("phone")
        context = {**self.store_context(store, self.rng.randint(1, 3)), "consent": self.consent()}
        self.emit("store", {"type": "identify", "traits": traits, "context": context})
        self.card_enrolled = True

    def store_purchase(
        self,
        store: Store | None = None,
        items: list[tuple[Product, int]] | None = None,
        *,
        receipt_email: bool = False,
    ) -> str:
        store = store or (self.c.store if self.rng.random() < 0.85 else self.rng.choice(STORES))
        if self.c.loyalty_card and not self.card_enrolled:
            self.store_enrol(store, phone=self.rng.random() < 0.5)
            self.minutes(1, 3)
        items = items or self.basket()
        order_id = self.order_id(store.id)
        properties = self.order_properties(order_id, items, shipping=Decimal("0.00"), affiliation=store.name)
        properties.update(
            store_id=store.id,
            store_name=store.name,
            payment_method=self.rng.choice(("carte_bancaire", "carte_bancaire", "especes", "sans_contact")),
        )
        pairs: list[tuple[str, str | None]] = [
            ("loyalty_card", self.c.loyalty_card),
            ("pos_customer_id", self.c.pos_customer_id),
        ]
        if receipt_email:
            properties["receipt"] = "email"
            pairs.append(("email", self.c.email))
            self.note_email()
        context = self.store_context(store, self.rng.randint(1, 3), *pairs)
        if not context["externalIds"]:  # no card: the till only knows the e-mail for the receipt, or nobody
            context["externalIds"] = self.external(("email", self.c.email))
            self.note_email()
        self.track("store", "Order Completed", properties, context)
        return order_id

    def store_visit(self, store: Store, reason: str) -> None:
        properties = {"store_id": store.id, "store_name": store.name, "reason": reason}
        context = self.store_context(store, 0, ("loyalty_card", self.c.loyalty_card))
        if context["externalIds"]:
            self.track("store", "Store Visited", properties, context)

    def kiosk_showroom(self, store: Store, product: Product) -> None:
        """Scans a machine at the in-store kiosk and has its sheet sent by e-mail."""
        session = _rng_uuid(self.rng)
        context: dict[str, Any] = {
            "library": {"name": "borne-arabica", "version": "1.9.0"},
            "device": {"id": f"{store.id}-BORNE-1", "type": "kiosk"},
            "location": {"city": store.city, "country": "France"},
            "locale": self.c.locale,
        }
        item = product_properties(product, store_id=store.id)
        self.track("kiosk", "Product Scanned", item, context, anonymousId=session)
        self.minutes(0.5, 3)
        shared = {**item, "share_via": "email", "share_message": "Fiche produit envoyée depuis la borne"}
        self.track(
            "kiosk",
            "Product Shared",
            shared,
            {**context, "traits": {"email": self.c.email}},
            anonymousId=session,
        )
        self.note_email()

    # ------------------------------------------------------------------ mobile app
    def app_context(self) -> dict[str, Any]:
        assert self.app_device is not None
        _, device, os_info = self.app_device
        library = "analytics-swift" if os_info["name"] == "iOS" else "analytics-kotlin"
        return {
            "app": {
                "name": RETAILER_NAME,
                "version": "4.12.0",
                "build": "4120",
                "namespace": "fr.maisonarabica",
            },
            "device": dict(device),
            "os": dict(os_info),
            "locale": self.c.locale,
            "library": {"name": library, "version": "1.5.11"},
        }

    def app_ids(self) -> dict[str, str]:
        assert self.app_device is not None
        ids = {"anonymousId": self.app_device[0]}
        if self.app_logged_in and self.c.user_id:
            ids["userId"] = self.c.user_id
        return ids

    def app_install(self) -> None:
        device, os_info = self.rng.choice(_APP_DEVICES)
        self.app_device = (_rng_uuid(self.rng), device, os_info)
        self.track(
            "app",
            "Application Installed",
            {"version": "4.12.0", "build": "4120"},
            self.app_context(),
            **self.app_ids(),
        )
        self.minutes(0.1, 1)
        self.emit(
            "app", {"type": "screen", "name": "Bienvenue", "context": self.app_context(), **self.app_ids()}
        )

    def app_sign_in(self) -> None:
        self.minutes(0.5, 4)
        self.app_logged_in = True
        context = {**self.app_context(), "consent": self.consent()}
        traits = self.full_traits(card=True)
        self.emit("app", {"type": "identify", "traits": traits, "context": context, **self.app_ids()})
        self.note_email()
        self.learn("account")

    def app_session(self, *, order: bool = False) -> str | None:
        if self.app_device is None:
            self.app_install()
        ids, context = self.app_ids(), self.app_context()
        if self.rng.random() < 0.3:
            self.track(
                "app", "Push Notification Opened", {"campaign": "Nouveautés de la semaine"}, context, **ids
            )
        self.track(
            "app",
            "Application Opened",
            {"from_background": self.rng.random() < 0.5, "version": "4.12.0"},
            context,
            **ids,
        )
        self.emit("app", {"type": "screen", "name": "Accueil", "context": context, **ids})
        products = self.favourite_products(self.rng.randint(1, 2))
        for product in products:
            self.minutes(0.2, 2)
            self.emit(
                "app",
                {
                    "type": "screen",
                    "name": "Fiche produit",
                    "properties": {"sku": product.sku},
                    "context": context,
                    **ids,
                },
            )
            self.track("app", "Product Viewed", product_properties(product), context, **ids)
        if self.rng.random() < 0.4 and self.c.loyalty_card:
            self.emit("app", {"type": "screen", "name": "Ma carte Club Arabica", "context": context, **ids})
        if not order:
            return None
        items = self.basket(products[0])
        order_id = self.order_id("A")
        properties = self.order_properties(
            order_id, items, shipping=Decimal("0.00"), affiliation="Application"
        )
        properties.update(
            delivery_method="retrait_magasin",
            store_id=self.c.store.id,
            payment_method="apple_pay" if context["os"]["name"] == "iOS" else "google_pay",
        )
        self.minutes(1, 5)
        self.track("app", "Order Completed", properties, context, **ids)
        return order_id

    def click_and_collect_pickup(self, order_id: str) -> None:
        self.days(0.5, 3, hours=(9, 18))
        store = self.c.store
        context = self.store_context(
            store, self.rng.randint(1, 3), ("loyalty_card", self.c.loyalty_card), ("email", self.c.email)
        )
        self.track(
            "store",
            "Order Picked Up",
            {"order_id": order_id, "store_id": store.id, "store_name": store.name},
            context,
        )

    # ------------------------------------------------------------------ service client and messaging
    def call(self, number: str, *, known_by_email: bool = False, order_id: str | None = None) -> None:
        reason, summary = self.rng.choice(_CALL_REASONS)
        call_id = f"APL-{next(self.world.calls)}"
        duration = int(self.rng.triangular(45, 1500, 260))
        properties: dict[str, Any] = {
            "call_id": call_id,
            "direction": "inbound",
            "duration_seconds": duration,
            "queue": "service_client",
            "agent": self.rng.choice(_AGENTS),
            "reason": reason,
            "summary": summary,
            "outcome": self.rng.choice(("resolu", "resolu", "resolu", "rappel_programme", "transfere_sav")),
        }
        if order_id:
            properties["order_id"] = order_id
        context = {
            "library": {"name": "standard-telephonique", "version": "2.1"},
            "externalIds": self.external(("phone", _national(number))),
        }
        self.track("phone", "Call Logged", properties, context)
        if known_by_email:
            # The caller is on an unknown number; the agent finds her by e-mail and links the number.
            traits = {"firstName": self.c.first_name, "lastName": self.c.last_name}
            ids = self.external(("phone", number), ("email", self.c.email))
            self.emit(
                "phone",
                {
                    "type": "identify",
                    "traits": traits,
                    "context": {"externalIds": ids, "library": context["library"]},
                },
            )

    def support_email(self, order_id: str | None) -> None:
        conversation = f"TCK-{self.rng.randrange(10**6):06d}"
        subject = f"Question sur ma commande {order_id}" if order_id else "Demande de conseil"
        context = {"channel": "email", "externalIds": self.external(("email", self.c.email))}
        self.track(
            "phone", "Message Received", {"conversation_id": conversation, "subject": subject}, context
        )
        self.minutes(30, 300)
        self.track(
            "phone",
            "Message Sent",
            {"conversation_id": conversation, "subject": f"RE: {subject}", "agent": self.rng.choice(_AGENTS)},
            context,
        )

    def whatsapp(self, *, link_email: bool) -> None:
        conversation = f"WA-{self.rng.randrange(10**6):06d}"
        number = f"whatsapp:{self.c.mobile}"
        context = {"externalIds": self.external(("whatsapp", number)), "traits": {"name": self.c.first_name}}
        text = self.rng.choice(
            (
                "Bonjour, ma machine fuit, que faire ?",
                f"Avez-vous le moulin en stock à {self.c.store.city} ?",
                "Bonjour, je n'ai pas reçu mon colis",
            )
        )
        self.track(
            "whatsapp",
            "Message Received",
            {"conversation_id": conversation, "message_type": "text", "text": text},
            context,
        )
        self.minutes(2, 40)
        self.track(
            "whatsapp",
            "Message Sent",
            {"conversation_id": conversation, "message_type": "text", "agent": self.rng.choice(_AGENTS)},
            context,
        )
        if link_email:
            self.minutes(1, 10)
            ids = self.external(("whatsapp", number), ("email", self.c.email))
            self.emit(
                "whatsapp",
                {
                    "type": "identify",
                    "traits": {"firstName": self.c.first_name, "lastName": self.c.last_name},
                    "context": {"externalIds": ids},
                },
            )
            self.note_email()
            self.learn("whatsapp_linked")

    def instagram(self, *, order: bool) -> None:
        handle = self.c.instagram
        if handle is None:
            return
        context = {"externalIds": self.external(("instagram", handle))}
        self.track(
            "instagram",
            "Message Received",
            {
                "conversation_id": f"IG-{self.rng.randrange(10**6):06d}",
                "text": "Ce coffret est encore disponible ?",
            },
            context,
        )
        if not order:
            return
        self.days(0, 4)
        items = [(PRODUCTS_BY_SKU["CO-DEC-050"], 1), *self.basket()[:1]]
        order_id = self.order_id("IG")
        properties = self.order_properties(order_id, items, shipping=Decimal("4.90"), affiliation="Instagram")
        properties["delivery_method"] = "domicile"
        context = {"externalIds": self.external(("instagram", handle), ("email", self.c.email))}
        self.track("instagram", "Order Completed", properties, context)
        self.note_email()

    def sms_reply(self) -> None:
        context: dict[str, Any] = {"externalIds": self.external(("phone", self.c.mobile))}
        if self.rng.random() < 0.3:
            context["consent"] = {"channels": {"sms": {"marketing": False}}}
            self.track("sms", "SMS Received", {"body": "STOP"}, context)
            self.learn("sms_stop")
        else:
            self.track("sms", "SMS Received", {"body": "Merci, à samedi !"}, context)

    # ------------------------------------------------------------------ campaigns
    def campaigns(self) -> None:
        """Newsletters to opted-in e-mails (and the odd SMS), from the day the e-mailing tool knows them."""
        if not (self.c.marketing and "email" in self.since and "opt_in" in self.since):
            return
        end = self.t
        reachable = max(self.since["email"], self.since["opt_in"])
        moment = self.world.start + timedelta(days=3, hours=7)
        number = 0
        while moment < self.world.end:
            number += 1
            if moment > reachable and not self.unsubscribed and self.rng.random() < 0.22:
                self.t = moment + timedelta(minutes=self.rng.randint(0, 90))
                name = f"Newsletter {moment:%Y-%m-%d}"
                email = {"externalIds": self.external(("email", self.c.email))}
                properties = {
                    "campaign_id": f"NL-{number:03d}",
                    "campaign_name": name,
                    "email_subject": "Les cafés du moment chez Maison Arabica",
                }
                self.track("email", "Email Delivered", properties, email)
                if self.rng.random() < 0.45:
                    self.minutes(10, 2000)
                    self.track("email", "Email Opened", properties, email)
                    if self.rng.random() < 0.25:
                        self.minutes(0.1, 2)
                        link = {**properties, "link_url": RETAILER_WEBSITE + "/nouveautes"}
                        self.track("email", "Email Link Clicked", link, email)
                        if self.browsers:
                            self.minutes(0.05, 0.2)
                            user_id = self.c.user_id if self.knows("account") else None
                            self.web_visit(self.browser(), user_id=user_id, campaign=name)
                    elif self.rng.random() < 0.04:
                        unsubscribe = {**email, "consent": {"channels": {"email": {"marketing": False}}}}
                        self.track("email", "Unsubscribed", properties, unsubscribe)
                        self.unsubscribed = True
                texting = self.knows("phone", moment) and not self.knows("sms_stop", moment)
                if texting and number % 6 == 0 and self.rng.random() < 0.5:
                    self.t = moment + timedelta(hours=3)
                    self.track(
                        "sms",
                        "SMS Sent",
                        {
                            "template": "promotion",
                            "campaign_name": name,
                            "body": "Maison Arabica : -15 % sur les cafés en grains ce "
                            "week-end. STOP au 36111",
                        },
                        {"externalIds": self.external(("phone", self.c.mobile))},
                    )
            moment += timedelta(days=14)
        self.t = end


# --------------------------------------------------------------------------------------------- personas
def _episodes(
    j: _Journey,
    options: Sequence[tuple[Callable[[], object], int]],
    *,
    gap: tuple[float, float],
    times: tuple[int, int] = (1, 7),
) -> None:
    """Repeat habits (purchases, visits, calls) until the customer drifts away or today is reached."""
    for _ in range(j.rng.randint(*times)):
        j.days(*gap)
        action = j.rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]
        action()


def _web_only(j: _Journey) -> None:
    browser = j.browser()
    viewed: list[Product] = []
    for _ in range(j.rng.randint(1, 3)):
        viewed = j.web_visit(browser, add=j.rng.random() < 0.3)
        j.days(0, 6)
    j.web_visit(browser, products=viewed[:1], add=True)
    j.web_identify(browser, user_id=j.c.user_id)
    order_id = j.web_order(browser, j.c.user_id, j.basket(viewed[0]))

    def again() -> None:
        device = j.browser(mobile=j.rng.random() < 0.5)
        seen = j.web_visit(device, user_id=j.c.user_id if device == browser else None, add=True)
        if device != browser:  # a new device: anonymous until the customer logs in
            j.web_identify(device, user_id=j.c.user_id, path="/compte/connexion")
        if j.rng.random() < 0.6:
            j.web_order(device, j.c.user_id, j.basket(seen[0]))

    def support() -> None:
        if j.rng.random() < 0.5:
            j.call(j.c.mobile, order_id=order_id)
        else:
            j.support_email(order_id)

    _episodes(j, [(again, 6), (support, 1)], gap=(15, 110))


def _store_only(j: _Journey) -> None:
    j.store_purchase()
    visits = [
        (lambda: j.store_purchase(receipt_email=False), 6),
        (lambda: j.store_visit(j.c.store, j.rng.choice(("degustation", "atelier_barista"))), 2),
        (lambda: j.call(j.c.mobile) if j.knows("phone") else None, 1),  # the till has her number
    ]
    _episodes(j, visits, gap=(10, 60), times=(2, 12))


def _ropo(j: _Journey) -> None:
    browser = j.browser()
    viewed = j.web_visit(browser, products=j.favourite_products(2), add=j.rng.random() < 0.4)
    for _ in range(j.rng.randint(0, 2)):
        j.days(0, 5)
        j.web_visit(browser, products=viewed[:1] + j.favourite_products(1))
    j.days(1, 12, hours=(8, 18))
    j.store_purchase(items=j.basket(viewed[0]))
    j.days(2, 40)
    # Creates a web account and attaches the loyalty card: the browsing and the till purchase meet.
    j.web_visit(browser)
    j.web_identify(browser, user_id=j.c.user_id, card=True)

    def web() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id, add=True)
        if j.rng.random() < 0.5:
            j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    _episodes(j, [(web, 3), (lambda: j.store_purchase(), 5)], gap=(15, 80), times=(1, 9))


def _showrooming(j: _Journey) -> None:
    store = j.c.store
    machine = j.rng.choice([p for p in PRODUCTS if p.category in ("machines", "accessoires")])
    j.days(0, 1, hours=(9, 18))
    j.kiosk_showroom(store, machine)
    j.days(0, 6)
    browser = j.browser()
    j.web_visit(browser, products=[machine], add=True)
    j.minutes(1, 10)
    j.web_identify(browser, user_id=j.c.user_id, path="/commande/identification")
    order_id = j.web_order(browser, j.c.user_id, [(machine, 1)])

    def return_in_store() -> None:
        # Returns the web order in the store: the till finds it by e-mail.
        properties = {
            "order_id": order_id,
            "store_id": store.id,
            "store_name": store.name,
            "total": machine.price,
            "currency": CURRENCY,
            "reason": "ne convient pas",
        }
        j.track("store", "Order Refunded", properties, j.store_context(store, 1, ("email", j.c.email)))

    def web() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id)
        if j.rng.random() < 0.5:
            j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    def kiosk_again() -> None:
        j.kiosk_showroom(store, j.rng.choice(PRODUCTS))

    _episodes(j, [(web, 5), (kiosk_again, 2), (return_in_store, 1)], gap=(20, 120))


def _app_member(j: _Journey) -> None:
    j.app_install()
    j.app_session()
    j.app_sign_in()

    def shop() -> None:
        order_id = j.app_session(order=j.rng.random() < 0.5)
        if order_id:
            j.click_and_collect_pickup(order_id)

    _episodes(j, [(shop, 5), (lambda: j.store_purchase(), 4), (lambda: j.app_session(), 2)], gap=(7, 60))


def _service(j: _Journey) -> None:
    browser = j.browser()
    viewed = j.web_visit(browser, add=True)
    j.web_identify(browser, user_id=j.c.user_id)
    order_id = j.web_order(browser, j.c.user_id, j.basket(viewed[0]))
    j.days(2, 20, hours=(7, 17))
    if j.c.landline and j.rng.random() < 0.6:
        j.call(j.c.landline, known_by_email=True, order_id=order_id)
    else:
        j.call(j.c.mobile, order_id=order_id)

    def call() -> None:
        j.call(j.c.landline if j.c.landline and j.rng.random() < 0.5 else j.c.mobile)

    def order() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id)
        j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    _episodes(j, [(call, 3), (order, 4), (lambda: j.support_email(None), 1)], gap=(20, 120))


def _messaging(j: _Journey) -> None:
    browser = j.browser(mobile=True)
    viewed = j.web_visit(browser)
    j.web_identify(browser, user_id=j.c.user_id)
    j.web_order(browser, j.c.user_id, j.basket(viewed[0]))
    j.days(3, 40)
    if j.c.instagram and j.rng.random() < 0.6:
        j.instagram(order=True)
    else:
        j.whatsapp(link_email=j.rng.random() < 0.7)

    def write() -> None:
        choice = j.rng.randrange(4)
        if choice == 0:
            j.whatsapp(link_email=not j.knows("whatsapp_linked") and j.rng.random() < 0.7)
        elif choice == 1:
            j.sms_reply()
        elif choice == 2:
            j.support_email(None)
        else:
            j.instagram(order=j.rng.random() < 0.3)

    def order() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id)
        j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    _episodes(j, [(write, 3), (order, 3)], gap=(15, 100))


def _omnichannel(j: _Journey) -> None:
    desktop = j.browser(mobile=False)
    for _ in range(j.rng.randint(1, 2)):
        j.web_visit(desktop)
        j.days(0, 4)
    # Signs up to the newsletter: the browser now has an e-mail, but no account.
    j.web_identify(desktop, user_id=None, phone=False, path="/newsletter")
    j.days(2, 25, hours=(8, 18))
    j.store_purchase()  # a loyalty card and a till customer id, nothing else
    j.days(10, 60, hours=(8, 18))
    j.store_purchase(receipt_email=True)  # the e-receipt joins the card to the newsletter e-mail
    j.days(5, 40)
    j.app_install()
    j.app_session()
    j.app_sign_in()
    j.days(3, 30, hours=(7, 17))
    j.call(j.c.mobile)

    def mobile_web() -> None:
        phone_browser = j.browser(mobile=True)
        seen = j.web_visit(phone_browser, add=True)
        j.web_identify(phone_browser, user_id=j.c.user_id, path="/compte/connexion")
        if j.rng.random() < 0.5:
            j.web_order(phone_browser, j.c.user_id, j.basket(seen[0]))

    def app() -> None:
        order_id = j.app_session(order=j.rng.random() < 0.5)
        if order_id:
            j.click_and_collect_pickup(order_id)

    _episodes(
        j,
        [
            (mobile_web, 2),
            (app, 3),
            (lambda: j.store_purchase(), 4),
            (lambda: j.whatsapp(link_email=not j.knows("whatsapp_linked")), 1),
            (lambda: j.call(j.c.mobile), 1),
        ],
        gap=(10, 70),
        times=(2, 9),
    )


_PERSONA_JOURNEYS: dict[str, Callable[[_Journey], None]] = {
    WEB_ONLY: _web_only,
    STORE_ONLY: _store_only,
    ROPO: _ropo,
    SHOWROOMING: _showrooming,
    APP_MEMBER: _app_member,
    SERVICE: _service,
    MESSAGING: _messaging,
    OMNICHANNEL: _omnichannel,
}


def _live(world: _World, customer: DemoCustomer, rng: random.Random) -> None:
    start = world.start + timedelta(days=rng.uniform(0, HISTORY_DAYS - 20))
    journey = _Journey(world, customer, rng, start)
    journey.days(0, 1)
    with contextlib.suppress(_Done):
        _PERSONA_JOURNEYS[customer.persona](journey)
    with contextlib.suppress(_Done):
        journey.campaigns()


# --------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class ExampleCustomer:
    name: str
    gender: str
    email: str
    phone: str  # national format, as an agent would type it
    profile_id: str
    channels: list[str]


@dataclass(frozen=True)
class DemoInfo:
    retailer: str
    customers: int
    stores: int
    products: int
    events: int
    events_by_channel: dict[str, int]
    profiles: int  # active (not merged into another)
    profiles_created: int
    merges: int
    identifiers: int
    consents: int
    conflicts: int
    seconds: float
    write_keys: dict[str, str]  # source name -> write key
    web_write_key: str
    api_token: str
    example: ExampleCustomer | None

    def counts(self) -> dict[str, Any]:
        """Everything the seed decides (no secrets, ids or timings): equal for equal seeds."""
        return {
            "customers": self.customers,
            "events": self.events,
            "events_by_channel": dict(self.events_by_channel),
            "profiles": self.profiles,
            "profiles_created": self.profiles_created,
            "merges": self.merges,
            "identifiers": self.identifiers,
            "consents": self.consents,
            "conflicts": self.conflicts,
        }

    def summary(self, base_url: str) -> str:
        base = base_url.rstrip("/")
        channels = "  ".join(f"{name} {number:,}" for name, number in self.events_by_channel.items())
        lines = [
            "",
            f"{self.retailer} is open: {self.customers:,} customers, {self.stores} stores, "
            f"{self.products} products, {self.events:,} events in {self.seconds:.1f} s.",
            "",
            f"  Events per channel  {channels}",
            f"  Profiles            {self.profiles:,} unified customers ({self.profiles_created:,} profiles "
            f"started, {self.merges:,} merged when a later event showed two were one person)",
            f"  Identifiers         {self.identifiers:,} (e-mails, phones, loyalty cards, till and web ids, …)",
            f"  Consent records     {self.consents:,}",
        ]
        if self.conflicts:
            lines.append(f"  Identity conflicts  {self.conflicts:,} to review (GET /v1/identity/conflicts)")
        lines += [
            "",
            f"  API                 {base}",
            f"  API docs            {base}/docs",
            f"  API token           {self.api_token}   (read profiles: Authorization: Bearer …)",
            f"  Web shop write key  {self.web_write_key}   (send events: HTTP Basic, the key as user name)",
            "  Other write keys",
        ]
        width = max(len(name) for name in self.write_keys)
        lines += [
            f"    {name:<{width}}  {key}"
            for name, key in self.write_keys.items()
            if key != self.web_write_key
        ]
        lines += ["", "Try it:", ""]
        example = self.example
        email = example.email if example else "camille.martin@gmail.com"
        who = f"it joins {example.name}'s profile" if example else "a profile is created or found"
        lines += [
            f"  # a new browser signs in on the web shop: {who}",
            f"  curl -u {self.web_write_key}: -H 'Content-Type: application/json' \\",
            f'       -d \'{{"anonymousId": "my-new-laptop", "traits": {{"email": "{email}"}}}}\' \\',
            f"       {base}/v1/identify",
        ]
        if example:
            digits = example.phone.replace(" ", "")
            lines += [
                "",
                f"  # {example.name}, found by the phone number the service client sees "
                f"({', '.join(example.channels)})",
                f"  curl -H 'Authorization: Bearer {self.api_token}' \\",
                f"       '{base}/v1/profiles?identifier=phone:{digits}'",
                "",
                f"  # {'her' if example.gender == 'female' else 'his'} history on every channel, oldest first",
                f"  curl -H 'Authorization: Bearer {self.api_token}' \\",
                f"       '{base}/v1/profiles/{example.profile_id}/timeline?limit=20'",
            ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- populate
def _ingest(
    database: Database,
    settings: Settings,
    sources: dict[str, SourceInfo],
    pending: list[_Pending],
    batch_size: int,
) -> None:
    """Feed the messages in time order, a transaction per batch; within a batch, one call per source."""
    pending.sort(key=lambda item: (item.timestamp, item.seq))
    for start in range(0, len(pending), batch_size):
        groups: dict[str, list[dict[str, Any]]] = {}
        for item in pending[start : start + batch_size]:
            groups.setdefault(item.source, []).append(item.message)
        with database.write() as session:
            for key, messages in groups.items():
                result = ingest_messages(session, settings, sources[key], messages, expected_type=None)
                if result.errors or result.recorded != len(messages):
                    first = result.errors[0] if result.errors else {}
                    bad = messages[first["index"]] if first else None
                    raise DemoError(
                        f"the pipeline refused generated events from {sources[key].name!r}: "
                        f"{result.as_response()}; first refused message: {bad}"
                    )


def _pick_example(
    database: Database, settings: Settings, population: list[DemoCustomer]
) -> ExampleCustomer | None:
    """The most omnichannel customer among the first candidates, found the way an agent would: by phone."""
    candidates = [c for c in population if c.persona == OMNICHANNEL][:40]
    candidates += [c for c in population if c.persona == SERVICE][:10]
    best: tuple[int, int, ExampleCustomer] | None = None
    with database.read() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        for customer in candidates:
            try:
                profile_id = identity.find_profile_id(session, registry, "phone", customer.mobile_national)
            except ParcoursError:  # no phone event reached this customer: not a good example
                continue
            view = identity.profile_view(session, profile_id)
            channels = [entry["channel"] for entry in view["channels"]]
            events = sum(int(entry["events"]) for entry in view["channels"])
            example = ExampleCustomer(
                customer.name, customer.gender, customer.email, customer.mobile_national, view["id"], channels
            )
            if best is None or (len(channels), events) > best[:2]:
                best = (len(channels), events, example)
    return best[2] if best else None


def populate(
    database: Database,
    settings: Settings,
    *,
    customers: int = 3000,
    seed: int = 7,
    now: datetime | None = None,
    batch_size: int = 500,
) -> DemoInfo:
    """Create the retailer's sources, a token and ``customers`` customers' histories; return what was made.

    The same seed gives the same population and the same counts. History ends at midnight UTC of the day
    of ``now`` (today by default) and starts eighteen months earlier.
    """
    if customers < 1:
        raise ValueError("customers: must be at least 1")
    started = time.perf_counter()
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    end = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    world = _World(start=end - timedelta(days=HISTORY_DAYS), end=end)

    with database.write() as session:
        sources: dict[str, SourceInfo] = {}
        write_keys: dict[str, str] = {}
        for key, name, channel in SOURCES:
            sources[key], write_keys[name] = create_source(session, name, channel)
        token = create_token(session, "demo")

    unique = _Registry()
    population: list[DemoCustomer] = []
    for index in range(customers):
        rng = random.Random(f"parcours-demo:{seed}:{index}")
        customer = _make_customer(index, rng, unique, end.year)
        population.append(customer)
        _live(world, customer, rng)

    _ingest(database, settings, sources, world.pending, batch_size)

    with database.read() as session:
        by_channel = Counter(
            {
                channel: int(number)
                for channel, number in session.execute(
                    select(Event.channel, func.count()).group_by(Event.channel)
                )
            }
        )
        active = session.scalar(
            select(func.count()).select_from(Profile).where(Profile.merged_into_id.is_(None))
        )
        created = session.scalar(select(func.count()).select_from(Profile))
        merges = session.scalar(select(func.count()).select_from(Merge).where(Merge.undone_at.is_(None)))
        identifiers = session.scalar(select(func.count()).select_from(Identifier))
        consents = session.scalar(select(func.count()).select_from(Consent))
        conflicts = session.scalar(select(func.count()).select_from(IdentityConflict))
    example = _pick_example(database, settings, population)
    return DemoInfo(
        retailer=RETAILER_NAME,
        customers=customers,
        stores=len(STORES),
        products=len(PRODUCTS),
        events=sum(by_channel.values()),
        events_by_channel=dict(sorted(by_channel.items(), key=lambda item: (-item[1], item[0]))),
        profiles=active or 0,
        profiles_created=created or 0,
        merges=merges or 0,
        identifiers=identifiers or 0,
        consents=consents or 0,
        conflicts=conflicts or 0,
        seconds=time.perf_counter() - started,
        write_keys=write_keys,
        web_write_key=write_keys[SOURCES[0][1]],
        api_token=token,
        example=example,
    )
