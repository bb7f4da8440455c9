"""render(): decisions → TwiML, parsed as XML (verbs and attributes, never string matching)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest

from ivr.routing.actions import (AfterHours, AlertNotice, Ask, Callback, Confirm, Emergency, Goodbye, Menu,
                                 Operator, Queue, ReadCase, ReportAsk, ReportOffer, Subscribe, TextCase,
                                 Transfer, Voicemail, Welcome)
from ivr.routing.state import CallState, Decision
from ivr.telephony.twiml import (RenderContext, dial_target, estimated_minutes, render, render_queue_wait,
                                 render_to_human, speech_hints)

PUBLIC = "https://ivr.example.test"


def fake_speak(verb, key, language, **values):
    """Say the key and its values, so tests can see which prompt went where."""
    detail = ",".join(f"{k}={v}" for k, v in sorted(values.items()))
    verb.say(f"{key}|{detail}", language=language)


def ctx(capture: str = "twilio", **kw) -> RenderContext:
    return RenderContext(call_sid="CA123", speak=fake_speak, capture=capture, public_url=PUBLIC,
                         hints=kw.pop("hints", "pothole, trash"), **kw)


def xml_of(action, step="ask", language="en", seq=4, capture="twilio") -> ET.Element:
    decision = Decision(action, CallState(step=step, language=language, seq=seq), "test")
    return ET.fromstring(str(render(decision, ctx(capture))))


def query(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {"path": parts.path, **{k: v[0] for k, v in parse_qs(parts.query).items()}}


def keys(element: ET.Element) -> list[str]:
    return [say.text.split("|")[0] for say in element.iter("Say")]


def test_ask_gathers_speech_and_dtmf_with_hints_then_redirects_on_silence():
    doc = xml_of(Ask(reprompt="no_input"))
    assert [c.tag for c in doc] == ["Gather", "Redirect"]
    gather = doc[0]
    assert gather.get("input") == "dtmf speech" and gather.get("hints") == "pothole, trash"
    assert gather.get("language") == "en-US" and gather.get("numDigits") == "1"
    assert query(gather.get("action")) == {"path": "/voice/turn", "step": "ask", "n": "4"}
    assert doc[1].text == gather.get("action")
    assert keys(gather) == ["no_input", "ask"]


def test_spanish_gather_uses_the_spanish_recogniser():
    assert xml_of(Ask(), language="es").find("Gather").get("language") == "es-US"


def test_welcome_speaks_the_advisory_first_then_the_language_choice():
    doc = xml_of(Welcome("Dial 911 for emergencies."), step="welcome")
    gather = doc.find("Gather")
    assert keys(gather) == ["welcome", "choose_language"]
    assert "advisory=Dial 911 for emergencies." in gather[0].text


def test_menu_is_keypad_only_and_lists_every_option():
    doc = xml_of(Menu("", (("1", "streets"), ("2", "police"))), step="menu")
    gather = doc.find("Gather")
    assert gather.get("input") == "dtmf" and gather.get("hints") is None
    assert keys(gather) == ["menu_intro", "menu_option", "menu_option", "menu_footer"]
    assert "digit=2,label=police" in gather[2].text


def test_transfer_dials_with_a_whisper_and_an_action():
    doc = xml_of(Transfer("roads", "Streets and Roads", "+1 312 555 0101"), step="routed")
    assert [c.tag for c in doc] == ["Say", "Dial"]
    dial = doc.find("Dial")
    assert query(dial.get("action")) == {"path": "/voice/dial-done", "n": "4"}
    number = dial.find("Number")
    assert number.text == "+13125550101"
    assert query(number.get("url")) == {"path": "/voice/whisper", "call": "CA123"}


def test_operator_on_sip_uses_sip_noun_and_queue_desk_enqueues():
    doc = xml_of(Operator("operator", "sip:op@pbx.example"), step="routed")
    assert doc.find("Dial/Sip").text == "sip:op@pbx.example"
    queued = xml_of(Operator("operator", "sip:op@pbx.example", queue="operator"), step="queued")
    assert queued.find("Enqueue").text == "operator" and queued.find("Dial") is None


def test_queue_enqueues_with_wait_url_and_action():
    doc = xml_of(Queue("parking", "Parking", "parking"), step="queued", language="es")
    enqueue = doc.find("Enqueue")
    assert enqueue.text == "parking"
    assert query(enqueue.get("waitUrl")) == {"path": "/voice/queue-wait", "lang": "es"}
    assert query(enqueue.get("action")) == {"path": "/voice/queue-done", "n": "4"}


def test_queue_wait_announces_position_and_offers_a_message():
    doc = ET.fromstring(str(render_queue_wait(ctx(), "en", 3, estimated_minutes(250, 3))))
    assert [c.tag for c in doc] == ["Say", "Gather", "Redirect"]
    assert "minutes=5,position=3" in doc[0].text
    assert query(doc[1].get("action")) == {"path": "/voice/queue-wait", "lang": "en", "choice": "1"}
    assert keys(doc[1]) == ["queue_offer"]


@pytest.mark.parametrize("then,tags", [("voicemail", ["Say", "Say", "Record", "Say", "Hangup"]),
                                       ("callback", ["Say", "Gather", "Redirect"]),
                                       ("goodbye", ["Say", "Say", "Hangup"])])
def test_after_hours_states_hours_then_follows_policy(then, tags):
    doc = xml_of(AfterHours("roads", "Roads", "Monday to Friday, 8 AM to 5 PM", then), step="voicemail")
    assert [c.tag for c in doc] == tags
    assert "hours=Monday to Friday, 8 AM to 5 PM" in doc[0].text


def test_voicemail_records_with_a_status_callback():
    record = xml_of(Voicemail("roads", "Roads"), step="voicemail").find("Record")
    assert query(record.get("recordingStatusCallback")) == {"path": "/voice/recording-status", "department": "roads"}
    assert query(record.get("action")) == {"path": "/voice/voicemail-done", "n": "4"}
    assert record.get("maxLength") == "120"


def test_emergency_advisory_then_dial_without_whisper_or_queue():
    doc = xml_of(Emergency("Dial 911.", "+13125550199", "emergency_transfer"), step="emergency")
    assert keys(doc) == ["emergency_advisory", "emergency_transfer"]
    assert doc.find("Dial/Number").get("url") is None and doc.find("Enqueue") is None
    nothing_left = xml_of(Emergency("Dial 911.", None), step="done")
    assert [c.tag for c in nothing_left] == ["Say", "Say", "Hangup"]


def test_confirm_callback_and_goodbye():
    confirm = xml_of(Confirm("roads", "pothole", "a pothole"), step="confirm")
    assert "description=a pothole" in confirm.find("Gather/Say").text
    offer = xml_of(Callback("water"), step="callback").find("Gather")
    assert offer.get("input") == "dtmf" and query(offer.get("action"))["step"] == "callback"
    done = xml_of(Callback("water", done=True), step="done")
    assert keys(done) == ["callback_done", "goodbye"] and done[-1].tag == "Hangup"
    assert keys(xml_of(Goodbye("voicemail_done"), step="done")) == ["voicemail_done", "goodbye"]


def test_stream_capture_connects_to_our_websocket_with_parameters():
    doc = xml_of(Ask(), capture="stream")
    assert [c.tag for c in doc] == ["Say", "Connect"]
    connect = doc.find("Connect")
    assert query(connect.get("action")) == {"path": "/voice/turn", "step": "ask", "n": "4"}
    stream = connect.find("Stream")
    assert stream.get("url") == "wss://ivr.example.test/voice/stream"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"step": "ask", "n": "4", "language": "en"}


def test_stream_plays_the_prompt_itself_when_audio_exists_so_callers_can_barge_in():
    context = ctx("stream", has_audio=lambda key, language, **values: True)
    decision = Decision(Ask(reprompt="no_match", prompt="ask_again"), CallState(step="ask", seq=4), "test")
    doc = ET.fromstring(str(render(decision, context)))
    assert [c.tag for c in doc] == ["Connect"]          # nothing spoken before the stream opens
    params = {p.get("name"): p.get("value") for p in doc.iter("Parameter")}
    assert json.loads(params["prompts"]) == [["no_match", {}], ["ask_again", {}]]


def test_stream_speaks_first_when_any_part_of_the_prompt_has_no_audio():
    context = ctx("stream", has_audio=lambda key, language, **values: key != "ask_again")
    decision = Decision(Ask(reprompt="no_match", prompt="ask_again"), CallState(step="ask", seq=4), "test")
    doc = ET.fromstring(str(render(decision, context)))
    assert [c.tag for c in doc] == ["Say", "Say", "Connect"]
    assert "prompts" not in {p.get("name") for p in doc.iter("Parameter")}


def test_record_capture_takes_keys_first_then_records_the_answer():
    doc = xml_of(Ask(), capture="record")
    assert [c.tag for c in doc] == ["Say", "Gather", "Record", "Redirect"]
    assert doc[1].get("input") == "dtmf" and len(doc[1]) == 0
    assert query(doc[2].get("action")) == {"path": "/voice/recorded", "step": "ask", "n": "4"}


def test_keypad_capture_never_listens_for_speech():
    assert xml_of(Ask(), capture="keypad").find("Gather").get("input") == "dtmf"


def test_helpers():
    assert dial_target(" +1 (312) 555-0101 ") == "+13125550101"
    assert speech_hints(["pothole", "Pothole", "a, b", "x" * 101]) == "pothole, a b"
    assert estimated_minutes(None, 4) == 4 and estimated_minutes(30, 1) == 1
    rescue = ET.fromstring(str(render_to_human(None, "Sorry.")))
    assert [c.tag for c in rescue] == ["Say", "Hangup"]
    human = ET.fromstring(str(render_to_human("sip:op@pbx", "Connecting.")))
    assert human.find("Dial/Sip").text == "sip:op@pbx" and human.find("Dial").get("action") is None


# --- every answer is well-formed TwiML, whatever text it carries -------------------------------------
TRICKY = 'Tom & Jerry\'s <b>"quoted"</b>\ttab\r\nnew line ñandú 北京 🚧'
EVERY_ACTION = [Welcome(TRICKY), Ask(reprompt="no_input"), Confirm("roads", "pothole", TRICKY),
                Menu("", (("1", "streets & roads"), ("2", "police"))), Transfer("roads", TRICKY, "+1 312 555 0101"),
                Operator("operator", "sip:op@pbx.example"), Operator("operator", "x", queue="operator"),
                Queue("parking", TRICKY, "parking"), Voicemail("roads", "Roads"),
                AfterHours("roads", "Roads", "8 AM < 5 PM", "voicemail"), AfterHours("roads", "Roads", "x", "callback"),
                AfterHours("roads", "Roads", "x", "goodbye"), Emergency(TRICKY, "+13125550199", "emergency_transfer"),
                Emergency("Dial 911.", None), Callback("water"), Callback("water", done=True), Goodbye("voicemail_done"),
                ReportOffer("roads", "Roads", "8-5", ("report", "callback", "voicemail")),
                ReportAsk("problem", (("1", "pothole"), ("2", "a <sign>"))), ReadCase("2026-1", "2 0 2 6", TRICKY, True),
                TextCase("2026-1", "pothole"), AlertNotice(7, "water", TRICKY, True), Subscribe("water", TRICKY)]


@pytest.mark.parametrize("capture", ["twilio", "keypad", "stream", "record"])
def test_every_answer_is_well_formed_twiml_whatever_text_it_carries(capture):
    def has_audio(key, language, **values):
        return key != "confirm"     # some streamed, some said first

    context = RenderContext(call_sid="CA1", speak=fake_speak, capture=capture, public_url=PUBLIC,
                            hints='pothole, "trash" & <recycling>\tbins\r\n', has_audio=has_audio, gather_language="en-US")
    for action in EVERY_ACTION:
        doc = render(Decision(action, CallState(step="ask", language="en", seq=3), "test"), context)
        root = ET.fromstring(str(doc))
        assert root.tag == "Response" and len(root), action
