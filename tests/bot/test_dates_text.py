"""Natural-language times, mrkdwn escaping and block splitting."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from bot.blocks import render_text, section, split_blocks
from bot.dates import parse_when, split_when
from bot.text import escape
from store.validation import Invalid, parse_numeric_date

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Stockholm
STOCKHOLM = ZoneInfo("Europe/Stockholm")
TODAY = NOW.astimezone(STOCKHOLM).date()


@pytest.mark.parametrize(("text", "languages", "expected"), [
    ("next friday 10am", [], "2026-11-27T09:00:00+00:00"),
    ("in 3 days", [], "2026-11-26T08:00:00+00:00"),  # a day, so 09:00 local, not the time it is now
    ("imorgon", ["sv"], "2026-11-24T08:00:00+00:00"),
    ("zítra v 10:00", ["cs"], "2026-11-24T09:00:00+00:00"),
    ("friday", [], "2026-11-27T08:00:00+00:00"),  # no time given: 09:00 local
])
def test_parse_when_in_the_reps_zone(text: str, languages: list[str], expected: str) -> None:
    moment = parse_when(text, tz="Europe/Stockholm", languages=languages, now=NOW)
    assert moment is not None and moment.isoformat() == expected


def local_when(text: str) -> datetime:
    moment = parse_when(text, tz="Europe/Stockholm", now=NOW)
    assert moment is not None, text
    return moment.astimezone(STOCKHOLM)


@pytest.mark.parametrize(("text", "expected"), [
    ("31.12.", "2026-12-31 09:00"),  # regression: a digit counted as a time, so midnight
    ("31.12", "2026-12-31 09:00"),
    ("31/12", "2026-12-31 09:00"),
    ("2026-12-31", "2026-12-31 09:00"),
    ("31. 12. 2026", "2026-12-31 09:00"),
    ("1.12.", "2026-12-01 09:00"),  # regression: read as 01:12 tomorrow
    ("3.5.2027 14:30", "2027-05-03 14:30"),  # regression: read month first, 5 March
    ("12/1", "2027-01-12 09:00"),  # day first; 12 January 2026 has passed
    ("11/23/2026", "2026-11-23 09:00"),  # month first only where day first cannot be
    ("31.12. 10am", "2026-12-31 10:00"),
    ("31 december", "2026-12-31 09:00"),
    ("15.30", "2026-11-23 15:30"),  # half past three, as Swedes write it
    ("midnight", "2026-11-24 00:00"),  # a time of day written is kept, even 00:00
])
def test_a_date_in_digits_is_read_day_first_at_nine_unless_a_time_is_given(text: str, expected: str) -> None:
    assert f"{local_when(text):%Y-%m-%d %H:%M}" == expected


@pytest.mark.parametrize(("text", "message"), [
    ("31.02.", "31 February is not a date"),
    ("32.12.", "32 December is not a date"),
    ("13/25", "13/25 is not a date: there is no month 25"),
    ("2026-13-01", "2026-13-01 is not a date: there is no month 13"),
    ("29.02.2027", "29 February 2027 is not a date"),
])
def test_reminder_refuses_31_february_and_other_days_that_do_not_exist(text: str, message: str) -> None:
    # regression: these became Tue 04 Feb 2031, Sat 04 Dec 2032, 13 Dec 2125 and 13 Jan 2026
    with pytest.raises(Invalid, match=f"^{message}$"):
        parse_when(text, tz="Europe/Stockholm", now=NOW)
    with pytest.raises(Invalid, match=f"^{message}$"):
        split_when([text, "call"], tz="Europe/Stockholm", now=NOW)


# 12:17 in Stockholm: a time of day that is no default, as in the report
LUNCH = datetime(2026, 11, 23, 11, 17, tzinfo=UTC)


@pytest.mark.parametrize(("text", "language", "expected"), [
    ("tomorrow", "en", "2026-11-24 09:00"),
    ("imorgon", "sv", "2026-11-24 09:00"),
    ("zítra", "cs", "2026-11-24 09:00"),
    ("morgen", "de", "2026-11-24 09:00"),
    ("demain", "fr", "2026-11-24 09:00"),
    ("mañana", "es", "2026-11-24 09:00"),
    ("jutro", "pl", "2026-11-24 09:00"),
    ("holnap", "hu", "2026-11-24 09:00"),
    ("in 3 days", "en", "2026-11-26 09:00"),
    ("om 3 dagar", "sv", "2026-11-26 09:00"),
    ("za 3 dny", "cs", "2026-11-26 09:00"),
    ("in 3 Tagen", "de", "2026-11-26 09:00"),
    ("o 3 dni", "sk", "2026-11-26 09:00"),
    ("čez 3 dni", "sl", "2026-11-26 09:00"),
    ("next week", "en", "2026-11-30 09:00"),
    ("in 3 hours", "en", "2026-11-23 15:17"),  # hours and minutes from now are exact
    ("om 3 timmar", "sv", "2026-11-23 15:17"),
    ("za 3 hodiny", "cs", "2026-11-23 15:17"),
    ("o 3 hodiny", "sk", "2026-11-23 15:17"),
    ("in 3 Stunden", "de", "2026-11-23 15:17"),
    ("dans 3 heures", "fr", "2026-11-23 15:17"),
    ("in 30 minutes", "en", "2026-11-23 12:47"),
    ("tonight", "en", "2026-11-23 20:00"),  # a part of the day is a time of day
])
def test_a_day_named_without_a_time_of_day_is_nine_not_the_time_it_is_now(
        text: str, language: str, expected: str) -> None:
    # regression: at 12:17, "tomorrow" was 12:17 tomorrow although bot/README.md promised 09:00
    moment = parse_when(text, tz="Europe/Stockholm", languages=[language], now=LUNCH)
    assert moment is not None, text
    assert f"{moment.astimezone(STOCKHOLM):%Y-%m-%d %H:%M}" == expected


@pytest.mark.parametrize(("words", "language", "expected"), [
    ("31.12. at 10 call", "en", "2026-12-31 10:00"),
    ("31.12. um 10 Uhr anrufen", "de", "2026-12-31 10:00"),
    ("31.12. kl 10.30 ring", "sv", "2026-12-31 10:30"),
    ("31.12. v 10 zavolat", "cs", "2026-12-31 10:00"),
    ("31.12. o 10 zadzwonić", "pl", "2026-12-31 10:00"),
    ("31.12. ob 10 pokliči", "sl", "2026-12-31 10:00"),
    ("31.12. à 10h appeler", "fr", "2026-12-31 10:00"),
    ("31.12. a las 10 llamar", "es", "2026-12-31 10:00"),
    ("31.12. 10-kor hívni", "hu", "2026-12-31 10:00"),
    ("tomorrow at 10 call", "en", "2026-11-24 10:00"),
    ("morgen 10 Uhr anrufen", "de", "2026-11-24 10:00"),
])
def test_a_time_word_after_the_day_keeps_its_hour_and_the_note_its_words(
        words: str, language: str, expected: str) -> None:
    # regression: "31.12. at" was taken for the date, so 09:00 with the note "10 call"
    moment, rest = split_when(words.split(), tz="Europe/Stockholm", languages=[language], now=NOW)
    assert moment is not None, words
    assert (f"{moment.astimezone(STOCKHOLM):%Y-%m-%d %H:%M}", rest) == (expected, words.split()[-1:])


@pytest.mark.parametrize("words", ["31.12. at lunch", "tomorrow at lunch"])
def test_a_time_word_without_a_time_stays_in_the_note(words: str) -> None:
    moment, rest = split_when(words.split(), tz="Europe/Stockholm", now=NOW)
    assert moment is not None and moment.astimezone(STOCKHOLM).time() == time(9)
    assert rest == ["at", "lunch"]


PRAGUE_15_SEPTEMBER = datetime(2026, 9, 15, 10, 17, tzinfo=UTC)


@pytest.mark.parametrize(("words", "question"), [
    ("1.10 send offer", "1.10: 1 October or 01:10? Write 1.10. for the date, 01:10 for the time"),
    ("15.05 send offer", "15.05: 15 May or 15:05? Write 15.05. for the date, 15:05 for the time"),
    ("23.12 send offer", "23.12: 23 December or 23:12? Write 23.12. for the date, 23:12 for the time"),
])
def test_reminder_asks_whether_1_10_is_a_date_or_a_time(words: str, question: str) -> None:
    # regression: with a Prague rep on 15 September these were 01:10, 15:05 and 23:12 today, silently
    with pytest.raises(Invalid, match=f"^{re.escape(question)}$"):
        split_when(words.split(), tz="Europe/Prague", now=PRAGUE_15_SEPTEMBER)


@pytest.mark.parametrize(("words", "expected"), [
    ("1.10. send", "2026-10-01 09:00"),  # the final dot: a date
    ("at 1.10 send", "2026-09-16 01:10"),  # a time word: a time
    ("kl 1.10 send", "2026-09-16 01:10"),
    ("friday 1.10 send", "2026-09-18 01:10"),  # a day before it: its time
    ("31.12. 1.10 send", "2026-12-31 01:10"),
    ("1.10. 10:00 send", "2026-10-01 10:00"),
])
def test_a_dotted_pair_that_could_be_both_is_read_as_its_context_says(words: str, expected: str) -> None:
    prague = ZoneInfo("Europe/Prague")
    moment, rest = split_when(words.split(), tz="Europe/Prague", now=PRAGUE_15_SEPTEMBER)
    assert moment is not None and f"{moment.astimezone(prague):%Y-%m-%d %H:%M}" == expected
    assert rest == ["send"]


@pytest.mark.parametrize(("words", "message"), [
    ("tomorrow 25:00 call her", "25:00 is not a time of day"),
    ("friday 13:75 call her", "13:75 is not a time of day"),
    ("friday at 24:00 call", "24:00 is not a time of day"),
    ("25:00 tomorrow call", "25:00 is not a time of day"),
    ("tomorrow 10:75am call", "10:75am is not a time of day"),
])
def test_reminder_refuses_a_time_of_day_that_does_not_exist(words: str, message: str) -> None:
    # regression: `remind asa tomorrow 25:00 call her` was tomorrow 09:00 with 25:00 dropped,
    # and `friday 13:75 call her` friday 09:00 with the note "13:75 call her"
    with pytest.raises(Invalid, match=f"^{message}$"):
        split_when(words.split(), tz="Europe/Stockholm", now=NOW)
    with pytest.raises(Invalid, match=f"^{message}$"):
        parse_when(" ".join(words.split()[:-1]), tz="Europe/Stockholm", now=NOW)


@given(st.integers(0, 99), st.integers(0, 99))
@example(25, 0)
@example(13, 75)
def test_a_time_of_day_after_a_day_is_that_time_or_refused(hour: int, minute: int) -> None:
    words = ["tomorrow", f"{hour}:{minute:02d}", "call"]
    if hour > 23 or minute > 59:
        with pytest.raises(Invalid, match="is not a time of day"):
            split_when(words, tz="Europe/Stockholm", now=NOW)
        return
    moment, rest = split_when(words, tz="Europe/Stockholm", now=NOW)
    assert moment is not None and rest == ["call"]
    local = moment.astimezone(STOCKHOLM)
    assert (local.date(), local.time()) == (TODAY + timedelta(days=1), time(hour, minute))


def test_an_impossible_time_beyond_the_words_a_time_may_take_is_the_notes() -> None:
    moment, rest = split_when("tomorrow call them about the 25:00 slot".split(), tz="Europe/Stockholm", now=NOW)
    assert moment is not None and rest == ["call", "them", "about", "the", "25:00", "slot"]


@given(st.integers(0, 99), st.integers(0, 99), st.sampled_from(["{a}.{b}", "{a}.{b:02d}", "{a:02d}.{b:02d}"]))
def test_a_dotted_pair_alone_is_the_one_thing_it_can_be_and_a_question_if_both(a: int, b: int, style: str) -> None:
    text = style.format(a=a, b=b)
    minutes = text.split(".")[1]
    is_date = 1 <= b <= 12 and 1 <= a <= calendar.monthrange(2000, b)[1]
    is_time = a <= 23 and len(minutes) == 2 and b <= 59
    if is_date and is_time:
        with pytest.raises(Invalid, match=rf"^{re.escape(text)}: .+ or {a:02d}:{minutes}\? Write "):
            split_when([text, "call"], tz="Europe/Stockholm", now=NOW)
    elif is_date:
        moment = local_when(text)
        assert (moment.day, moment.month, moment.time()) == (a, b, time(9))
    elif is_time:
        moment = local_when(text)
        assert moment.time() == time(a, b) and NOW < moment <= NOW + timedelta(days=2)  # today or tomorrow
    else:
        with pytest.raises(Invalid, match="is not a date"):
            parse_when(text, tz="Europe/Stockholm", now=NOW)


@pytest.mark.parametrize(("text", "tz", "now", "message"), [
    ("0000-01-01", "Europe/Prague", NOW, "0000-01-01 is not a date: there is no year 0"),
    ("1.1.0000", "Europe/Prague", NOW, "1.1.0000 is not a date: there is no year 0"),
    ("1.1.", "Europe/Prague", datetime(9999, 12, 31, 12, tzinfo=UTC),
     "1.1. is outside the calendar (years 1 to 9999)"),
    ("31.12.9999 23:00", "America/Los_Angeles", NOW, "31.12.9999 23:00 is outside the calendar (years 1 to 9999)"),
    ("1.1.0001", "Asia/Tokyo", NOW, "1.1.0001 is outside the calendar (years 1 to 9999)"),
])
def test_reminder_refuses_dates_outside_years_1_to_9999(text: str, tz: str, now: datetime, message: str) -> None:
    # regression: "1.1." on 31.12.9999 was a traceback (date(10000, 1, 1)), and so was year 0 once
    with pytest.raises(Invalid, match=f"^{re.escape(message)}$"):
        split_when([*text.split(), "call"], tz=tz, now=now)


@given(st.dates(), st.integers(1, 12), st.integers(1, 31))
@example(date(9999, 12, 31), 1, 1)  # regression: date(10000, 1, 1) was a ValueError
def test_a_day_and_month_without_a_year_is_a_date_or_invalid_on_any_day(today: date, month: int, day: int) -> None:
    try:
        found = parse_numeric_date(f"{day}.{month}.", today=today)
    except Invalid:
        return
    assert found is not None and found >= today and (found.day, found.month) == (day, month)


@pytest.mark.parametrize("text", ["10", "5.", "2026"])
def test_bare_numbers_are_not_a_month_years_away(text: str) -> None:
    # regression: dateparser read "10" as 23 October 2027
    assert parse_when(text, tz="Europe/Stockholm", now=NOW) is None


DAY_FIRST = ["{d}.{m}.{y}", "{d:02d}.{m:02d}.{y}", "{d}. {m}. {y}", "{d}/{m}/{y}", "{y}-{m:02d}-{d:02d}"]


@given(st.dates(min_value=TODAY, max_value=date(2099, 12, 31)), st.sampled_from(DAY_FIRST))
def test_any_date_written_in_digits_is_that_date_at_nine(day: date, style: str) -> None:
    moment = local_when(style.format(d=day.day, m=day.month, y=day.year))
    assert (moment.date(), moment.time()) == (day, time(9))


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
def test_a_date_without_a_year_is_the_next_such_day(day: date) -> None:
    found = local_when(f"{day.day}.{day.month}.").date()
    assert (found.month, found.day) == (day.month, day.day) and found >= TODAY
    earlier_years = range(TODAY.year, found.year)
    assert not any(day.day <= calendar.monthrange(y, day.month)[1] and date(y, day.month, day.day) >= TODAY
                   for y in earlier_years)


@given(st.integers(0, 99), st.integers(0, 99), st.sampled_from(["{d}.{m}.", "{d}.{m}.2026", "2026-{m}-{d}"]))
def test_an_impossible_day_or_month_is_refused(day: int, month: int, style: str) -> None:
    assume(not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(2026 if "2026" in style else 2000, month)[1]))
    with pytest.raises(Invalid, match="is not a date"):
        parse_when(style.format(d=day, m=month), tz="Europe/Stockholm", now=NOW)


def test_split_when_takes_the_longest_time_prefix() -> None:
    moment, rest = split_when("next friday 10am send the offer".split(), tz="Europe/Stockholm", now=NOW)
    assert moment is not None and moment.isoformat() == "2026-11-27T09:00:00+00:00"
    assert rest == ["send", "the", "offer"]
    assert split_when(["whenever"], tz="UTC", now=NOW) == (None, ["whenever"])


def test_escape_neutralises_mentions_and_links() -> None:
    assert escape("<!channel> & <https://x|y>") == "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"


def test_split_blocks_never_over_fifty() -> None:
    blocks = [section(str(i)) for i in range(121)]
    parts = split_blocks(blocks)
    assert [len(p) for p in parts] == [50, 50, 21]
    assert [b for part in parts for b in part] == blocks


def test_render_text_is_readable() -> None:
    assert render_text([section("*Jan* &lt;jan@x&gt;")]) == "*Jan* <jan@x>"
