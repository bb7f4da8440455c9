"""The words an SMS conversation reserves: carrier keywords (Twilio's defaults, CTIA) and the line's
own commands, in every offered language. Topic keywords may not use them (`ivr check`)."""
from __future__ import annotations

STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "parar", "baja", "alto"})
STOP_PREFIXES = frozenset({"stop", "stopall", "parar"})
START_WORDS = frozenset({"start", "unstop", "yes"})     # YES only when opted out (else it answers a question)
HELP_WORDS = frozenset({"help", "info", "ayuda", "informacion"})
STATUS_WORDS = frozenset({"status", "estado", "case", "caso"})
SUBSCRIBE_WORDS = frozenset({"subscribe", "suscribir", "suscribirse", "suscribirme", "alta"})
UNSUBSCRIBE_WORDS = frozenset({"unsubscribe", "desuscribir"})
#: Words that end a topic's alerts only when a topic follows ("CANCEL WATER"); alone they are STOP.
UNSUBSCRIBE_IF_TOPIC = frozenset({"cancel", "baja", "cancelar", "stop", "stopall", "parar", "quit", "end"})
TOPICS_WORDS = frozenset({"topics", "temas", "alerts", "alertas"})
LANGUAGE_WORDS = frozenset({"english", "ingles", "espanol", "spanish"})

COMMAND_WORDS = (STOP_WORDS | START_WORDS | HELP_WORDS | STATUS_WORDS | SUBSCRIBE_WORDS | UNSUBSCRIBE_WORDS
                 | UNSUBSCRIBE_IF_TOPIC | TOPICS_WORDS | LANGUAGE_WORDS)

#: Command words that say which language the texter writes in (a cue for replies' language).
LANGUAGE_OF_COMMAND = {
    **{w: "es" for w in ("suscribir", "suscribirse", "suscribirme", "alta", "baja", "cancelar", "desuscribir",
                         "ayuda", "estado", "caso", "temas", "alertas", "parar", "alto", "informacion")},
    **{w: "en" for w in ("subscribe", "unsubscribe", "help", "status", "case", "topics", "alerts")},
}
