"""The demo's console users: one sign-in for every role, with a known password, so each screen of the
console can be opened on the demo data at once.

The agent, the supervisor and the admin are the inbox agents of the same names (Karim Benali, Sonia
Martin, Thibault Moreau: :func:`parcours.auth.users.create_user` links a user to the inbox agent of its
name), so "my conversations" are the ones routed to them. The store associates work in the two stores
where the demo leaves pickups to hand over today (:data:`ASSOCIATE_STORES`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from parcours.auth.users import create_user

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


DEMO_LOGINS: tuple[DemoLogin, ...] = (
    DemoLogin("admin", f"admin@{DEMO_DOMAIN}", "Thibault Moreau", "en"),
    DemoLogin("supervisor", f"supervisor@{DEMO_DOMAIN}", "Sonia Martin", "en"),
    DemoLogin("agent", f"agent@{DEMO_DOMAIN}", "Karim Benali", "en"),
    DemoLogin("store_associate", f"store.paris@{DEMO_DOMAIN}", "Léa Garnier", "en", ASSOCIATE_STORES[0]),
    DemoLogin("store_associate", f"store.lyon@{DEMO_DOMAIN}", "Hugo Fabre", "fr", ASSOCIATE_STORES[1]),
    DemoLogin("marketer", f"marketing@{DEMO_DOMAIN}", "Inès Roussel", "fr"),
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
