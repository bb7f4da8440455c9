"""Child process of ivr.voices.pyttsx3_engine: stdin text → 16-bit PCM WAV with pyttsx3. Run by path.

Imports nothing but pyttsx3 (not numpy, not the `ivr` package) so it starts fast.
Usage: python pyttsx3_child.py --voice gmw/en-us --rate 150 OUT.wav < text
"""
from __future__ import annotations

import argparse
import sys


def resolve_voice(engine, wanted: str) -> str:
    """pyttsx3 voice id for `wanted` (id or its last part, case-insensitive). espeak silently
    falls back to English for an unknown name, so an unknown voice is refused instead."""
    wanted_lower = wanted.lower()
    for voice in engine.getProperty("voices"):
        if wanted_lower in (voice.id.lower(), voice.id.lower().rsplit("/", 1)[-1]):
            return voice.id
    raise SystemExit(f"unknown voice '{wanted}'; pick one of `espeak-ng --voices` (e.g. gmw/en-us, roa/es-419)")


def main(argv: list[str] | None = None) -> None:
    """Render stdin's text to the WAV file named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", required=True)
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("out")
    args = parser.parse_args(argv)
    text = sys.stdin.buffer.read().decode("utf-8")
    import pyttsx3

    engine = pyttsx3.init()
    engine.setProperty("voice", resolve_voice(engine, args.voice))
    engine.setProperty("rate", args.rate)
    engine.save_to_file(text, args.out)
    engine.runAndWait()
    # espeak's retrieval mode synthesises on its own thread, and pyttsx3 2.99's loop can return
    # before that thread wrote the file; wait for it, or the process exits with nothing saved.
    from pyttsx3.drivers import _espeak

    _espeak.Synchronize()


if __name__ == "__main__":
    main()
