"""The demo's console users: one sign-in for every role, with a known password, so each screen of the
console can be opened on the demo data at once.

The agent, the supervisor and the admin are the demo's inbox agents (Karim Benali, Sonia Martin, Thibault
Moreau): :func:`parcours.auth.users.create_user` links a user to the inbox agent of the same name and
e-mail, so "my conversations" are the ones routed to them. The store associates work in the two stores
where the demo leaves pickups to hand over today (:data:`ASSOCIATE_STORES`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from parcours.auth.users import create_user
from parcours.demo.helpers import to_ascii

DEMO_PASSWORD = "parcours-demo"  # every demo login's password (the console asks for 10 characters or more)
DEMO_DOMAIN = "maison-arabica.fr"
ASSOCIATE_STORES = ("PAR-RIV", "LYS-REP")  # Paris Rivoli, Lyon République


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    name: str
    locale: str  # the console's language for this user
    location_id: str | None = None  # a store associate's store
    password: str = DEMO_PASSWORD

    @property
    def what(self) -> str:
        """What this login shows, for the printed summary."""
        return {
            "admin": "everything: inbox, customers, review queue, store, admin",
            "supervisor": "every team's inbox, customers, the matching review queue, unmerge",
            "agent": "the inbox (conversations routed to Karim), customers",
            "store_associate": f"the store view of {self.location_id}, customers",
            "marketer": "customers (read only)",
        }[self.role]


def staff_email(name: str) -> str:
    """A member of staff's e-mail: first name at the retailer's domain (karim@maison-arabica.fr). The
    inbox agents have the same, so each console user is recognised as the same person as its agent."""
    return f"{to_ascii(name.split()[0]).lower()}@{DEMO_DOMAIN}"


def _login(role: str, name: str, locale: str, location_id: str | None = None) -> DemoLogin:
    return DemoLogin(role, staff_email(name), name, locale, location_id)


DEMO_LOGINS: tuple[DemoLogin, ...] = (
    _login("admin", "Thibault Moreau", "en"),
    _login("supervisor", "Sonia Martin", "en"),
    _login("agent", "Karim Benali", "en"),
    _login("store_associate", "Léa Garnier", "en", ASSOCIATE_STORES[0]),
    _login("store_associate", "Hugo Fabre", "fr", ASSOCIATE_STORES[1]),
    _login("marketer", "Inès Roussel", "fr"),
)


def create_console_users(session: Session) -> list[DemoLogin]:
    """Create :data:`DEMO_LOGINS` (the stores and the inbox agents must exist); returns them."""
    for login in DEMO_LOGINS:
        create_user(session, login.email, login.password, name=login.name, role=login.role, locale=login.locale,
                    location_id=login.location_id)  # fmt: skip
    return list(DEMO_LOGINS)


def login_for(role: str) -> DemoLogin:
    """The first demo login of ``role``."""
    for login in DEMO_LOGINS:
        if login.role == role:
            return login
    raise KeyError(role)
