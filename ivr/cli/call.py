"""`ivr call` — phone the line from a terminal, as Twilio would, with signed requests.

For admins and developers trying the line that `make run` serves. The call is played by the
project's one Twilio simulator (`ivr.telephony.simulator`): it posts the webhooks Twilio posts
(signed with the same auth token) and follows the TwiML it gets back. This module only prints
what the caller hears, in words, and asks for the caller's answers: a typed answer is speech (a
`<Gather>` gets it as `SpeechResult`; a Media Stream gets it spoken by espeak, so our own
recogniser hears it), digits are keypad presses, an empty line is silence.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import click

from ivr.cli.prompts import _config, _rules
from ivr.lang import dirs_beside, locale
from ivr.prompts.cache import audio_store
from ivr.prompts.catalogue import PromptError, fill, load_catalogue, load_lexicons
from ivr.prompts.fixed import fixed_texts
from ivr.routing.hours import hours_by_code
from ivr.speech.audio import parse_wav
from ivr.telephony.simulator import HttpTransport, SimulatedCall, SimulatorError, Unreachable
from ivr.voices import pyttsx3_engine as tts

DEV_TOKEN = "dev-auth-token-not-secret"   # the token `make run` serves with (see Makefile)
WHO = {"line": "line", "agent": "agent hears", "queue": "on hold", "dial": "☎ dialling"}


class PromptWords:
    """The words of the line's prompts, read from the local catalogue (`IVR_PROMPTS_DIR`).

    The line sends audio (a `<Play>` URL named by a hash of the words, or μ-law on a Media
    Stream), so the words are found the way they were made: a Media Stream names its prompts
    and their values; a `<Play>` file is matched against every fixed prompt's name.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.catalogue, _problems = load_catalogue(config["IVR_PROMPTS_DIR"])
        self.by_audio: dict[str, str] = {}
        rules, _why = _rules(config["IVR_RULES_PATH"])
        try:
            lexicons = load_lexicons(config["IVR_PROMPTS_DIR"], self.catalogue)   # file names hash the spoken words
            store = audio_store(config, sorted(self.catalogue), lexicons.__getitem__)
            for language, prompts in self.catalogue.items():
                for item in fixed_texts(prompts, language, rules, rules and hours_by_code(rules)):
                    self.by_audio[store.name(item.text, item.voice)] = item.text
        except (KeyError, ValueError, PromptError):   # no voice configured, a broken prompt: keys then
            pass

    def of_audio(self, url: str) -> str | None:
        name = url.rsplit("/", 1)[-1].split("?")[0].removesuffix(".wav")
        return self.by_audio.get(name)

    def of_prompt(self, key: str, language: str, values: Mapping[str, Any]) -> str | None:
        prompt = self.catalogue.get(language, {}).get(key)
        if prompt is None:
            return None
        try:
            return fill(prompt, values)
        except PromptError:
            return None


def speak(words: str, language: str) -> bytes:
    """A typed answer as the caller's voice: espeak (the language file's `tts_voice`) → 8 kHz PCM16."""
    voice = locale(language, "tts_voice", dirs_beside(_config().get("IVR_RULES_PATH"))) or \
        locale("en", "tts_voice") or "en"
    return parse_wav(tts.render_wav(words, voice, 150)).at_rate(8000).pcm16


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="Where the line is served.")
    @click.option("--token", default=None, help="Auth token (default: $TWILIO_AUTH_TOKEN or make run's dev token).")
    @click.option("--from", "caller", default="+15555550100", show_default=True, help="The caller's number.")
    @click.option("--say", "script", multiple=True,
                  help="Scripted answers in order (text = speech, digits = keys, '' = silence); else asks you.")
    def call(url: str, token: str | None, caller: str, script: tuple[str, ...]) -> None:
        """Phone the line from this terminal with signed requests, as Twilio would."""
        answers = iter(script)

        def answer(kind: str, _call: SimulatedCall) -> str:
            what = {"speech": "speak or press", "keys": "press", "stream": "speak or press"}[kind]
            if script:
                said = next(answers, None)
                if said is None:
                    raise click.ClickException("the scripted answers ran out; the line is still listening")
                click.echo(f"  you ({what}): {said}")
                return said
            return click.prompt(f"  you ({what}; Enter = silence)", default="", show_default=False)

        def show(who: str, words: str) -> None:
            click.echo(f"  {WHO[who]}: {words}")

        words = PromptWords(_config())
        secret = token or os.environ.get("TWILIO_AUTH_TOKEN") or DEV_TOKEN
        transport = HttpTransport(url)
        line = SimulatedCall(transport, token=secret, public_url=url, from_=caller, to="+15555550311",
                             audio_words=words.of_audio, prompt_words=words.of_prompt)
        try:
            outcome = line.run(answer, voice=speak, ws_base="ws" + url.rstrip("/")[len("http"):], on_line=show)
        except Unreachable as exc:
            raise click.ClickException(f"{exc}; is `make run` serving?") from None
        except SimulatorError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            transport.close()
        click.echo(f"call ended: {outcome}")
