"""Prompts: what the line says, in each language, and the audio the caller hears.

    catalogue.py  prompts/<lang>.yaml → Prompt, filled per call, checked (`ivr check`)
    fixed.py      every text knowable before a call (what `ivr prompts build` renders)
    cache.py      rendered audio, named by a hash of words + voice, rendered in the background
    signed.py     the signed token of a render-on-fetch URL (words + voice, for audio not on disk yet)
    serving.py    the app's side: speak() as <Play> or <Say> (never waiting for a voice), μ-law for
                  Media Streams, the files and their render on fetch

Others use only the names below; the modules behind them may change.
"""
from ivr.prompts.catalogue import KNOWN_PLACEHOLDERS, REQUIRED_KEYS, PromptError, check_prompts
from ivr.voices import spell_digits  # the agent whisper reads caller numbers the way prompts do
from ivr.prompts.serving import (audio_on_disk, audio_ulaw, audio_url, catalogue_now, has_audio, init_app, prompt,
                                 say_language, speak, still_on_disk, text)
from ivr.prompts.signed import words_in_url   # the simulator shows the words of a render-on-fetch <Play>

__all__ = ["init_app", "speak", "text", "audio_url", "audio_ulaw", "has_audio", "say_language",
           "check_prompts", "spell_digits", "PromptError", "REQUIRED_KEYS", "KNOWN_PLACEHOLDERS",
           "catalogue_now", "prompt", "words_in_url",   # the console's prompt editor lists and plays the catalogue
           "audio_on_disk", "still_on_disk"]   # the webhooks re-use TwiML whose prompts are all files on disk
