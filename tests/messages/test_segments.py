import pytest

from messages.segments import fit, is_gsm7, measure, segments, to_gsm7


def test_plain_ascii_is_gsm7_160_per_segment():
    assert measure("a" * 160).encoding == "GSM-7"
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2   # split: 153 per segment
    assert segments("a" * 306) == 2
    assert segments("a" * 307) == 3


def test_extension_characters_count_twice():
    text = "€" * 80
    assert measure(text).encoding == "GSM-7"
    assert measure(text).units == 160
    assert segments(text) == 1
    assert segments(text + "{") == 2


def test_french_accents_in_gsm7_do_not_change_the_count():
    text = "Votre rendez-vous est confirmé à 9 h, où vous savez. Ça va ? " * 2
    assert is_gsm7(text)  # é à ù Ç are in the GSM alphabet
    assert measure(text).encoding == "GSM-7"


@pytest.mark.parametrize("accent", ["ê", "ô", "ç", "â", "î", "û", "ë", "œ"])
def test_french_accents_outside_gsm7_switch_to_ucs2(accent):
    base = "Rappel : votre rendez-vous demain a 9 h. Details sur le portail client, merci et a demain"
    assert len(base) == 89 and segments(base) == 1
    with_accent = base + accent
    length = measure(with_accent)
    assert length.encoding == "UCS-2"
    assert length.segments == 2  # 90 UTF-16 units: more than 70, so 67 per segment


def test_ucs2_boundaries_and_emoji():
    assert segments("ê" * 70) == 1
    assert segments("ê" * 71) == 2
    assert segments("ê" * 134) == 2
    assert segments("ê" * 135) == 3
    assert measure("👍").units == 2  # a surrogate pair


def test_empty_text_has_no_segment():
    assert segments("") == 0


def test_fit_transliterates_only_when_over_budget():
    short = "À bientôt !"
    assert fit(short, 2) == short  # fits as UCS-2: left alone
    long = ("Bientôt : " + "x" * 130)
    assert segments(long) == 3
    fitted = fit(long, 2)
    assert fitted.startswith("Bientot : ") and is_gsm7(fitted) and segments(fitted) == 1
    assert to_gsm7("Crème brûlée, garçon, cœur « ok »") == 'Crème brulée, garcon, coeur " ok "'
