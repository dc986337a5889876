"""The tasks of ``quality.py``, generated from fixed seeds, and how their answers are scored.

Every task is built by ``random.Random`` from its seed alone (no network, no files), so the same id
always gives the same context, question and key. Three kinds:

- ``needle``: filler prose with one fact (a vault code) hidden at a fractional depth.
- ``counting``: log lines; the question asks how many lines match two conditions at once, which a
  model can only get exactly by counting with code.
- ``semantic``: short lines, each about one of four topics, written from varied phrases so that no
  single keyword finds a topic's lines; the question asks which topic is most frequent, which needs the
  lines read by meaning (sub-calls) rather than searched.

Scoring (``score``): answers are normalised (lower case, punctuation dropped, whitespace collapsed).
needle: 1 when the code (compared without its dashes) is contained in an answer of at most 200
characters, else 0. semantic: 1 when the right topic is named in an answer of at most 200 characters
that names no other topic, else 0. counting: the first integer in the answer; 1.0 when it equals the
key, else 0.5 × max(0, 1 − |answer − key| / key) (a near miss earns at most half), 0 without a number.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

KINDS = ("needle", "counting", "semantic")
# Context sizes in characters: "small" fits the local model's 16,384-token window (≈ 60 K characters),
# "large" does not. The semantic kind is smaller: every one of its lines must be read by a sub-model.
SIZES: dict[str, dict[str, int]] = {
    "needle": {"small": 16_000, "large": 80_000},
    "counting": {"small": 16_000, "large": 80_000},
    "semantic": {"small": 8_000, "large": 64_000},
}
DEPTHS = (0.2, 0.5, 0.8)  # where the needle sits, as a fraction of the context
SHORT = 200  # an answer longer than this (normalised) never counts as containing the key


@dataclass(frozen=True)
class Task:
    id: str
    kind: str
    size: str  # "small", "large", or the characters asked for
    chars: int
    seed: int
    question: str
    context: str
    key: str


# --- needle ---------------------------------------------------------------------------------------

_SUBJECTS = [
    "The committee",
    "Our neighbour",
    "The old librarian",
    "A visiting engineer",
    "The harbour master",
    "Every gardener in town",
    "The night porter",
    "A retired teacher",
    "The bakery owner",
    "The survey team",
    "My cousin",
    "The museum guide",
]
_VERBS = [
    "talked at length about",
    "wrote a short note on",
    "kept thinking about",
    "complained once more about",
    "made careful plans for",
    "asked several questions about",
    "spent the afternoon on",
    "remembered fondly",
    "took photographs of",
    "argued politely over",
]
_OBJECTS = [
    "the autumn fair",
    "the broken fountain",
    "a row of chestnut trees",
    "the price of flour",
    "the new tram timetable",
    "an unfinished mural",
    "the lighthouse repairs",
    "a box of faded letters",
    "the choir rehearsal",
    "the river after the storm",
    "the winter market",
    "a stray grey cat",
]
_TAILS = [
    "",
    " before lunch",
    " while the rain kept falling",
    " with some enthusiasm",
    " for no clear reason",
    " near the station",
    " late in the evening",
    " as the bells rang",
]
_ARCHIVES = ["Halden", "Morrow", "Quillon", "Serafin", "Tavistock", "Ulvere", "Brightwater"]


def _filler_sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}."
    )


def _prose(rng: random.Random, chars: int) -> list[str]:
    sentences: list[str] = []
    total = 0
    while total < chars:
        sentence = _filler_sentence(rng)
        sentences.append(sentence)
        total += len(sentence) + 1
    return sentences


def needle(chars: int, seed: int, depth: float, size: str) -> Task:
    rng = random.Random(f"needle/{chars}/{seed}/{depth}")
    archive = rng.choice(_ARCHIVES)
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    code = (
        f"{rng.choice(letters)}{rng.randint(2, 9)}-{rng.randint(1000, 9999)}-"
        f"{rng.choice(letters)}{rng.choice(letters)}"
    )
    fact = f"The vault code for the {archive} archive is {code}."
    sentences = _prose(rng, chars - len(fact))
    sentences.insert(round(depth * len(sentences)), fact)
    # Paragraphs of six sentences, so the text looks like prose rather than one line.
    paragraphs = [" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6)]
    question = (
        f"Somewhere in the text is the vault code for the {archive} archive. "
        "What is that vault code? Answer with the code only."
    )
    return Task(
        f"needle-{size}-d{depth}-s{seed}",
        "needle",
        size,
        chars,
        seed,
        question,
        "\n\n".join(paragraphs),
        code,
    )


# --- counting -------------------------------------------------------------------------------------

_SERVICES = ["auth", "billing", "search", "payments", "inventory", "gateway", "mailer"]
_LEVELS = ["INFO"] * 6 + ["WARN"] * 2 + ["ERROR"] * 2
_STATUSES = [200] * 8 + [404, 500, 503]


def counting(chars: int, seed: int, size: str) -> Task:
    rng = random.Random(f"counting/{chars}/{seed}")
    service = rng.choice(_SERVICES)
    lines: list[str] = []
    total = 0
    minute = 0
    while total < chars:
        minute += rng.randint(0, 3)
        stamp = f"2026-03-{1 + minute // 1440:02d} {minute // 60 % 24:02d}:{minute % 60:02d}:{rng.randint(0, 59):02d}"
        level = rng.choice(_LEVELS)
        status = rng.choice(_STATUSES) if level != "ERROR" else rng.choice([500, 503, 404])
        line = (
            f"{stamp} [{level}] service={rng.choice(_SERVICES)} user=u{rng.randint(1000, 9999)} "
            f"latency_ms={rng.randint(3, 2500)} status={status}"
        )
        lines.append(line)
        total += len(line) + 1
    key = sum(1 for line in lines if f"service={service} " in line and "[ERROR]" in line)
    question = (
        f"The context is a log, one event per line. How many lines have level ERROR and "
        f"service={service}? Answer with the number only."
    )
    return Task(
        f"counting-{size}-s{seed}",
        "counting",
        size,
        chars,
        seed,
        question,
        "\n".join(lines),
        str(key),
    )


# --- semantic -------------------------------------------------------------------------------------

# Each topic is told through varied phrases: no word (and not the topic's name) marks all its lines.
_TOPICS: dict[str, list[str]] = {
    "cooking": [
        "simmered the lentils with cumin for an hour",
        "burnt the garlic bread again",
        "kneaded the dough until it felt elastic",
        "tried a new risotto with wild mushrooms",
        "sharpened the knives before dicing onions",
        "let the stew rest overnight so the flavours deepened",
        "whisked the eggs for a fluffy omelette",
        "roasted a tray of carrots with honey",
        "found that the custard had curdled",
        "marinated the chicken in lemon and thyme",
        "reduced the sauce until it coated a spoon",
        "fried dumplings in a cast-iron pan",
        "baked a sourdough loaf with a dark crust",
        "added too much salt to the soup",
        "grated parmesan over the pasta",
    ],
    "weather": [
        "watched a thunderstorm roll in over the hills",
        "said the fog had not lifted all morning",
        "noticed frost on the car windows at dawn",
        "got soaked by a sudden downpour",
        "checked the forecast and saw a heatwave coming",
        "felt the wind pick up before the gale",
        "saw hailstones bounce off the pavement",
        "enjoyed a cloudless blue sky at noon",
        "heard that the drought would last another month",
        "shovelled snow off the steps twice",
        "felt the humidity climb after lunch",
        "saw a rainbow after the showers cleared",
        "measured two centimetres of rain overnight",
        "noticed the barometer falling fast",
        "complained that the drizzle never stopped",
    ],
    "sports": [
        "scored twice in the second half",
        "ran the marathon in under four hours",
        "missed a penalty in the final minute",
        "trained at the velodrome every morning",
        "won the doubles match in straight sets",
        "swam forty lengths before breakfast",
        "was sent off for a late tackle",
        "set a club record in the high jump",
        "coached the under-twelves on Saturday",
        "lost the chess-boxing bout on points",
        "hit a six over the pavilion",
        "finished third in the slalom",
        "stretched carefully after the sprint relay",
        "signed with a rival team for next season",
        "rowed the length of the lake in a single scull",
    ],
    "music": [
        "practised scales on the cello for an hour",
        "tuned the guitar a semitone down",
        "sang the alto part at the rehearsal",
        "bought tickets for the symphony on Friday",
        "wrote a melody in a minor key",
        "played the drums too loudly for the neighbours",
        "learned a new chord progression",
        "listened to an old jazz record all evening",
        "joined a brass band as the second trumpet",
        "recorded a demo of the chorus",
        "forgot the lyrics halfway through the song",
        "conducted the orchestra for the first time",
        "replaced a broken piano string",
        "improvised a solo over the bass line",
        "hummed the refrain of a folk ballad",
    ],
}
_PEOPLE = [
    "Ana",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivo",
    "Jun",
    "Kira",
    "Lars",
    "Mina",
    "Nils",
    "Omar",
    "Priya",
]
_WHEN = ["", " yesterday", " on Tuesday", " last week", " this morning", " again", " at last"]
# Shares of the lines, shuffled over the topics per task: the most frequent one is clearly ahead.
_SHARES = (0.37, 0.23, 0.21, 0.19)


def semantic(chars: int, seed: int, size: str) -> Task:
    rng = random.Random(f"semantic/{chars}/{seed}")
    topics = list(_TOPICS)
    rng.shuffle(topics)
    average = 52  # characters per line, about
    n = max(len(topics), chars // average)
    counts = [round(share * n) for share in _SHARES]
    labels = [topic for topic, count in zip(topics, counts, strict=True) for _ in range(count)]
    rng.shuffle(labels)
    lines = [
        f"{rng.choice(_PEOPLE)} {rng.choice(_TOPICS[topic])}{rng.choice(_WHEN)}."
        for topic in labels
    ]
    names = ", ".join(sorted(_TOPICS))
    question = (
        f"Each line of the context is about exactly one of these topics: {names}. "
        "Which topic are the most lines about? Answer with the topic name only."
    )
    return Task(
        f"semantic-{size}-s{seed}",
        "semantic",
        size,
        chars,
        seed,
        question,
        "\n".join(lines),
        topics[0],
    )


# --- building and scoring -------------------------------------------------------------------------


def build(kind: str, size: str, seed: int, depths: tuple[float, ...] = DEPTHS) -> list[Task]:
    """The tasks of one kind, size ("small", "large" or a number of characters) and seed."""
    chars = SIZES[kind][size] if size in SIZES[kind] else int(size)
    if kind == "needle":
        return [needle(chars, seed, depth, size) for depth in depths]
    if kind == "counting":
        return [counting(chars, seed, size)]
    if kind == "semantic":
        return [semantic(chars, seed, size)]
    raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def score(kind: str, answer: str | None, key: str) -> float:
    """The answer's score against the key (see the module docstring)."""
    if not answer:
        return 0.0
    text = normalise(answer)
    if kind == "counting":
        number = re.search(r"-?\d[\d,]*", answer.replace("_", ""))
        if number is None:
            return 0.0
        value, expected = int(number.group().replace(",", "")), int(key)
        if value == expected:
            return 1.0
        return 0.5 * max(0.0, 1.0 - abs(value - expected) / max(expected, 1))
    if len(text) > SHORT:
        return 0.0
    if kind == "needle":
        return float(normalise(key).replace(" ", "") in text.replace(" ", ""))
    if kind == "semantic":
        others = [t for t in _TOPICS if t != key]
        named = re.search(rf"\b{key}\b", text) is not None
        return float(named and not any(re.search(rf"\b{t}\b", text) for t in others))
    raise ValueError(f"unknown kind {kind!r}")
