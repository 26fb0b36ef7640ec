"""An order's return at the store: goods bought on any channel, brought back here, restocked here, the
refund recorded; a refusal (return period over, more than can still be returned) shows beside the form."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.commerce import orders
from parcours.console.store.common import (
    CHANNEL,
    StoreContext,
    form_context,
    names_of,
    render,
    request_id_of,
    require_here,
    store_context,
    variant_names,
)
from parcours.console.web import Page, form_for, page_for
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.models import Order, Return, ReturnPolicy

router = APIRouter(include_in_schema=False)


def _return_deadline(session: Session, order: Order) -> datetime:
    """The end of the return period (the return policy's days, as ``orders.return_items`` applies it)."""
    days = session.scalar(select(ReturnPolicy.days).where(ReturnPolicy.channel.is_(None)))
    return order.created_at + timedelta(days=days if days is not None else orders.DEFAULT_RETURN_DAYS)


def _return_page(
    page: Page, session: Session, context: StoreContext, order_id: str, *, error: str | None = None,
    values: dict[str, int] | None = None, reason: str = "", status: int = 200,
) -> Response:  # fmt: skip
    order = session.get(Order, order_id[:60])
    if order is None:
        raise NotFound(page.t.gettext("No order {number}.", number=order_id[:60]))
    lines = orders.lines_of(session, [order.id]).get(order.id, [])
    deadline = _return_deadline(session, order)
    return render(
        page, "store/return.html", context, status=status, order=order, lines=lines, deadline=deadline,
        within_period=utcnow() <= deadline, skus=variant_names(session, [line.sku for line in lines]),
        name=names_of(session, [order.profile_id]).get(order.profile_id or ""), error=error,
        values=values or {}, reason=reason,
    )  # fmt: skip


@router.get("/console/store/orders/{order_id}/return")
def store_return_form(
    order_id: str, page: Page = Depends(page_for("store")), store: str | None = None
) -> Response:
    with page.db.read() as session:
        context = store_context(page, session, store)
        require_here(page, context)
        return _return_page(page, session, context, order_id)


@router.post("/console/store/orders/{order_id}/returns")
def store_return(order_id: str, page: Page = Depends(form_for("store"))) -> Response:
    """Goods of an order bought on any channel, brought back here: restocked here, refund recorded. A
    refusal (return period over, more than can still be returned) shows beside the form."""
    t = page.t
    context, here = form_context(page)
    request_id = request_id_of(page)
    reason = page.field("reason", "", max_chars=300)
    now = utcnow()
    with page.db.read() as session:
        order = session.get(Order, order_id[:60])
        if order is None:
            raise NotFound(t.gettext("No order {number}.", number=order_id[:60]))
        done = session.scalar(
            select(Return.id).where(Return.channel == CHANNEL, Return.request_id == request_id)
        )
        bought = orders.lines_of(session, [order.id]).get(order.id, [])
        deadline = _return_deadline(session, order)
    target = context.link(
        f"/console/store/customers/{order.profile_id}" if order.profile_id else "/console/store"
    )
    if done is not None:  # a second tap, or the page sent again
        return page.redirect(target, flash=t.gettext("This return was already recorded."))
    values: dict[str, int] = {}
    problem, status = None, 400
    for line in bought:
        raw = page.field(f"quantity_{line.sku}", "0", max_chars=12)
        left = line.quantity - line.returned
        if not raw.isdigit() or int(raw) > left:
            problem = problem or t.gettext(
                "{sku}: at most {count} can be returned.", sku=line.sku, count=left
            )
            if raw.isdigit():  # shown again as typed, beside the message
                values[line.sku] = int(raw)
            continue
        if int(raw):
            values[line.sku] = int(raw)
    if problem is None and now > deadline:
        problem, status = (
            t.gettext("The return period of this order ended on {date}.", date=t.date(deadline)),
            409,
        )
    if problem is None and not values:
        problem = t.gettext("Choose at least one item to return.")
    if problem is None and not reason:
        problem = t.gettext("Reason: say why the items come back.")
    if problem is None:
        try:
            with page.db.write() as session:
                record, created = orders.return_items(
                    session, order.id, location_id=here.id, channel=CHANNEL, request_id=request_id, reason=reason,
                    lines=[{"sku": sku, "quantity": quantity} for sku, quantity in values.items()], now=now,
                )  # fmt: skip
                refund = t.money(record.refund_amount, order.currency)
        except (InvalidInput, Conflict) as error:  # a return made meanwhile, a rule checked by the domain
            problem, status = error.message, 409 if isinstance(error, Conflict) else 400
        else:
            message = (
                t.gettext("Return recorded for order {number}: refund {refund}; the items are back in stock here.",
                          number=order.number, refund=refund)
                if created
                else t.gettext("This return was already recorded.")
            )  # fmt: skip
            return page.redirect(target, flash=message)
    with page.db.read() as session:
        return _return_page(page, session, context, order.id, error=problem, values=values, reason=reason,
                            status=status)  # fmt: skip
