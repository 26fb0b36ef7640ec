"""The demo retailer's reference data: its stores, products and sources, and the people who shop there.

Everything here is plain module-level data (:data:`STORES`, :data:`PRODUCTS`, :data:`SOURCES`, the name
lists, :data:`AREAS`, :data:`PERSONAS`) so the commerce domain can turn it into real records later without
reading the generator's logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parcours.demo.helpers import to_ascii

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
        return to_ascii(self.name).lower().replace(" ", "-").replace("'", "-")

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
