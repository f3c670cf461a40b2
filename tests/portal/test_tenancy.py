import pytest
from sqlalchemy import func, select, update

from portal.db import TenantScopeError, tenant_session
from portal.models import Booking, Customer
from tests.factories import make_booking, make_business, make_customer


@pytest.fixture
def two_tenants(db):
    a, b = make_business(db), make_business(db)
    ca, cb = make_customer(db, a), make_customer(db, b)
    make_booking(db, ca)
    make_booking(db, cb)
    db.commit()
    return a, b, ca, cb


def test_tenant_session_sees_only_its_business(session_factory, two_tenants):
    a, b, ca, cb = two_tenants
    with tenant_session(session_factory, a.id) as s:
        assert s.scalars(select(Customer)).all() == [s.get(Customer, ca.id)]
        assert s.scalar(select(func.count()).select_from(Booking)) == 1
        # Even a lookup by primary key of another tenant's row finds nothing.
        assert s.scalar(select(Customer).where(Customer.id == cb.id)) is None


def test_joins_are_scoped_too(session_factory, two_tenants):
    a, b, ca, cb = two_tenants
    with tenant_session(session_factory, b.id) as s:
        rows = s.execute(select(Booking.id, Customer.name).join(Customer)).all()
        assert [name for _, name in rows] == [cb.name]


def test_bulk_update_cannot_touch_other_tenant(session_factory, two_tenants, db):
    a, b, ca, cb = two_tenants
    with tenant_session(session_factory, a.id) as s:
        s.execute(update(Customer).values(name="changed"))
        s.commit()
    db.expire_all()
    assert db.get(Customer, cb.id).name != "changed"
    assert db.get(Customer, ca.id).name == "changed"


def test_new_rows_are_stamped_and_foreign_rows_refused(session_factory, two_tenants):
    a, b, ca, cb = two_tenants
    with tenant_session(session_factory, a.id) as s:
        c = Customer(external_id="new", name="New")
        s.add(c)
        s.flush()
        assert c.business_id == a.id
        s.add(Customer(business_id=b.id, external_id="x", name="X"))
        with pytest.raises(TenantScopeError):
            s.flush()


def test_unscoped_session_refuses_tenant_queries(session_factory):
    with session_factory() as s:
        with pytest.raises(TenantScopeError):
            s.scalars(select(Customer)).all()
