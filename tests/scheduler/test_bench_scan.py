"""``bench/scan.py`` runs on both databases and leaves nothing behind (a smoke test, no timings checked)."""

from sqlalchemy import func, select

from bench.scan import label, measure_scan
from portal.models import Booking, Business


def test_measure_scan_reports_each_size_and_rolls_back(engine, database_url):
    with engine.connect() as conn:
        before = conn.scalar(select(func.count()).select_from(Booking))
    lines = []
    result = measure_scan(database_url, sizes=(1000, 3000), due=20, repeats=2, out=lines.append)
    # Two sizes fill the two named slots (the defaults are 10k and 1M).
    assert set(result) == {"scan_ms_10k", "scan_ms_1m", "due_reminders"}
    assert result["due_reminders"] == 20
    assert all(isinstance(result[k], float) and result[k] >= 0 for k in ("scan_ms_10k", "scan_ms_1m"))
    assert "3,000 bookings (6,000 reminders, 20 due)" in lines[-2]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Booking)) == before
        assert conn.scalar(select(func.count()).select_from(Business).where(Business.slug.like("bench-scan-%"))) == 0


def test_labels():
    assert [label(n) for n in (10_000, 1_000_000, 1500)] == ["10k", "1m", "1500"]


def test_other_numbers_of_sizes_are_named_after_them(engine, database_url):
    assert set(measure_scan(database_url, sizes=(500,), due=5, repeats=1, out=lambda _: None)) == {
        "scan_ms_500", "due_reminders"}
