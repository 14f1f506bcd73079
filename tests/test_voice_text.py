"""The voice call's words: composed for listening, whatever the announcement holds.

No URLs and no markup survive, the text is never empty, routes are said as digits, the
TwiML stays well-formed (Hypothesis); times are said with words; the plan's
``emergency_route`` is checked and used.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.domain.plan import PlanError, load_plan
from broadcaster.rendering import voice_text
from channels import voice_twiml
from tests.voice_plan import PLAN, SPELLED, render


def test_the_plan_accepts_voice_and_checks_the_emergency_route(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN, encoding="utf-8")
    plan = load_plan(path)
    assert plan.fallback == {"voice": "sms"}
    assert plan.audiences["medical"].emergency_route == "Emergency"
    assert "voice" in plan.channels_by_severity["minor"]
    path.write_text(PLAN.replace('emergency_route = "Emergency"', 'emergency_route = "Fire"'))
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert "audiences.medical.emergency_route: must be the need of one of its routes" in str(
        caught.value
    )


def test_without_emergency_route_the_first_phone_route_is_dialled(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.replace('emergency_route = "Emergency"\n', ""), encoding="utf-8")
    content = render(load_plan(path), "Outage", "Body.", "en")
    # The portal route comes first but has no phone number: the fault line is dialled.
    assert content["emergency"] == "+31207654321"
    assert content["prompt"].endswith("Press 2 to be connected to us.")


def test_without_an_emergency_route_the_call_offers_only_key_1(tmp_path):
    plan_text = PLAN.replace('emergency_route = "Emergency"\n', "").replace(
        "+31 20 123 4567", "https://acme.example/help"
    )
    plan_text = plan_text.replace('contact = "+31 20 765 4321"', 'contact = "help@acme.example"')
    path = tmp_path / "plan.toml"
    path.write_text(plan_text, encoding="utf-8")
    content = render(load_plan(path), "Outage", "Body.", "en")
    assert content["emergency"] == "" and "Press 2" not in content["prompt"]


_MARKUP = ("<", ">", "http://", "https://", "www.", "**", "`", "[", "]", "{", "}")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    title=st.text(min_size=1, max_size=200),
    body=st.text(max_size=800)
    | st.lists(
        st.sampled_from(
            [
                "<script>x</script>",
                "https://evil.example/a?b=c",
                "**bold**",
                "www.x.nl",
                "&lt;b&gt;",
                "Call +31 20 123 4567.",
                "[link](http://x)",
                "`code`",
                "\u202e",
                "\ud800",
                "\uffff\x00",
                "&#0;",
                "\n\n",
                "Fine.",
                " ",
            ]
        ),
        max_size=12,
    ).map("".join),
    locale=st.sampled_from(["en", "nl", "da", "sv"]),
)
def test_the_voice_text_never_carries_links_or_markup_and_is_never_empty(
    tmp_path, title, body, locale
):
    path = tmp_path / "plan.toml"
    if not path.exists():
        path.write_text(PLAN, encoding="utf-8")
    content = render(load_plan(path), title, body, locale)
    for key in ("text", "short"):
        spoken = content[key]
        assert spoken.strip(), key
        assert not any(mark in spoken.lower() for mark in _MARKUP), (key, spoken)
        assert "\u202e" not in spoken
    assert len(content["text"]) <= voice_text.SPOKEN_MAX
    # Whatever the text held, the call's TwiML is well-formed and says the text as given.
    root = ET.fromstring(voice_twiml.fitted_call(content, "http://127.0.0.1:8000/hooks/x"))
    assert root.find("Say").text == content["text"]
    assert SPELLED in content["text"], "routes come before the body: always said, as digits"


def test_spoken_times_say_weekday_and_month_as_words():
    monday = 1799049600.0  # 2027-01-04 09:00 in Amsterdam: a Monday
    said = voice_text.spoken_time(monday, "nl", "Europe/Amsterdam", now=monday - 3 * 86400)
    assert said.startswith("maandag 4 januari") and "09:00" in said
    assert voice_text.spoken_time(monday, "en", "Europe/Amsterdam", now=monday) == "9:00 AM"
    assert voice_text.spelled("+45 32 12 34 56", "NL", "da") == "plus 4 5, 3 2, 1 2, 3 4, 5 6"
    assert voice_text.spelled("https://acme.example", "NL", "en") == ""


def test_a_drill_call_says_it_is_an_exercise_first(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN, encoding="utf-8")
    content = render(load_plan(path), "Outage", "Body.", "en", exercise=True)
    assert content["text"].startswith("EXERCISE: This is a message from Acme Energy.")
    assert content["short"].startswith("EXERCISE: ")
