"""The TwiML of a voice call, built with the Twilio SDK's ``VoiceResponse``.

The call itself (``channels/voice.py``) and the hooks that answer Twilio during the call
(``broadcaster/web/hooks/voice.py``) speak through these, so every spoken piece has the
same language and voice. Texts come in already composed for listening
(``broadcaster/rendering/voice_text.py``); this module only says how Twilio speaks them.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Gather, VoiceResponse

# Locale → (<Say> language, voice): Amazon Polly voices Twilio offers for each language
# (https://www.twilio.com/docs/voice/twiml/say/text-speech). A locale without its own voice
# is spoken in English: a Dutch text read by an English voice would be unintelligible, and
# the renderer only falls back to English text for such a locale anyway.
VOICES: dict[str, tuple[str, str]] = {
    "en": ("en-GB", "Polly.Amy"),
    "nl": ("nl-NL", "Polly.Lotte"),
    "da": ("da-DK", "Polly.Naja"),
    "sv": ("sv-SE", "Polly.Astrid"),
}
DEFAULT_VOICE = VOICES["en"]
# Twilio refuses a Calls request whose Twiml parameter is longer than this.
TWIML_MAX = 4000
GATHER_TIMEOUT = 8  # seconds Twilio waits for the key press after the prompt


def voice_for(locale: str) -> tuple[str, str]:
    """(language, voice) for ``locale`` ("nl", "nl_BE", "sv-SE"…); English otherwise."""
    language = str(locale or "").replace("-", "_").split("_", 1)[0].lower()
    return VOICES.get(language, DEFAULT_VOICE)


def _say(response: VoiceResponse | Gather, text: str, locale: str) -> None:
    language, voice = voice_for(locale)
    response.say(text, language=language, voice=voice)


def _gather(response: VoiceResponse, prompt: str, locale: str, action: str) -> None:
    gather = response.gather(num_digits=1, action=action, method="POST", timeout=GATHER_TIMEOUT)
    _say(gather, prompt, locale)


def call(content: Mapping[str, str], action: str, twice: bool = True) -> str:
    """The whole call: the message (twice), then the key-press prompt, then goodbye.

    Without a key press Twilio goes on after ``<Gather>``: the goodbye ends the call.
    """
    locale = content.get("locale", "en")
    response = VoiceResponse()
    _say(response, content["text"], locale)
    if twice:
        response.pause(length=1)
        _say(response, content["text"], locale)
    _gather(response, content["prompt"], locale, action)
    _say(response, content["goodbye"], locale)
    return str(response)


def fitted_call(content: Mapping[str, str], action: str) -> str:
    """``call``, read once when reading it twice would exceed Twilio's Twiml limit."""
    twiml = call(content, action)
    return twiml if len(twiml) <= TWIML_MAX else call(content, action, twice=False)


def machine(content: Mapping[str, str]) -> str:
    """An answering machine: the short message, no question it cannot answer."""
    response = VoiceResponse()
    _say(response, content["short"], content.get("locale", "en"))
    response.hangup()
    return str(response)


def prompt_again(content: Mapping[str, str], action: str) -> str:
    """No usable key: the prompt once more, then goodbye."""
    locale = content.get("locale", "en")
    response = VoiceResponse()
    _gather(response, content["prompt"], locale, action)
    _say(response, content["goodbye"], locale)
    return str(response)


def spoken(text: str, locale: str, hang_up: bool = True) -> str:
    """One sentence, then the end of the call (a thanks, a goodbye)."""
    response = VoiceResponse()
    if text:
        _say(response, text, locale)
    if hang_up:
        response.hangup()
    return str(response)


def connect(content: Mapping[str, str], number: str) -> str:
    """Key 2: say we connect them, then dial the audience's emergency route."""
    locale = content.get("locale", "en")
    response = VoiceResponse()
    _say(response, content["connecting"], locale)
    response.dial(number)
    return str(response)
