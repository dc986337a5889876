"""The two contexts of ``how_rlm_works.ipynb``, built by plain arithmetic (no randomness), so every
machine builds exactly the same text and a recorded session replays on it.

- ``gate_log()``: 25 days of door-access events (~150,000 characters) with two facilities notes about
  the east gate's keypad hidden among them; the later one holds the code.
- ``reviews()``: 60 customer reviews of a kettle; some complain about the delivery, in words that
  rarely say "delivery". ``reviews_truth()`` gives the right answer to the counting question.
"""

from __future__ import annotations

GATES = ("north", "south", "loading-dock", "east", "garage")
RESULTS = ("granted", "granted", "granted", "granted", "denied")

NEEDLES = {
    700: "NOTE facilities: east gate keypad reported faulty, engineer booked",
    1_900: "NOTE facilities: east gate keypad repaired; its code changed to 7351",
}


def gate_log(lines: int = 2_500) -> str:
    per_day = lines // 25 + 1
    out = []
    for i in range(lines):
        day, slot = divmod(i, per_day)
        seconds = slot * (86_400 // per_day) + (i * 7) % 13
        stamp = f"2026-03-{day + 1:02d} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if i in NEEDLES:
            out.append(f"{stamp} {NEEDLES[i]}")
            continue
        gate = GATES[(i * 7) % len(GATES)]
        result = RESULTS[(i * 11) % len(RESULTS)]
        out.append(f"{stamp} gate={gate} badge=B-{1000 + (i * 37) % 9000} result={result}")
    return "\n".join(out) + "\n"


# (stars, text, about delivery?)
_REVIEWS = [
    (5, "Boils a full litre in under three minutes and the handle stays cool.", False),
    (2, "The box turned up soaked and split open; the courier had left it by the bins.", True),
    (4, "Quiet, quick, and the blue light is a nice touch.", False),
    (1, "Lid hinge snapped in the second week.", False),
    (2, "Took nineteen days to arrive although I paid for next-day.", True),
    (5, "Exactly what I wanted, replaces a kettle that lasted ten years.", False),
    (3, "Fine kettle, but the limescale filter pops out when pouring.", False),
    (1, "Parcel went to a house two streets away and I had to fetch it myself.", True),
    (4, "Good value. The cord is a bit short.", False),
    (2, "Tracking said delivered, nothing came for another week.", True),
    (5, "Makes tea. Does not leak. Five stars.", False),
    (3, "Arrived with a dent in the side, works fine though.", True),
    (2, "The switch needs a hard press and sometimes does not click on.", False),
    (4, "Stylish and fast; a little loud when it reaches the boil.", False),
    (1, "Stopped heating after a month; the seller ignored my emails.", False),
    (
        3,
        "The van driver threw it over the gate. Kettle survived, my faith in couriers did not.",
        True,
    ),
    (5, "Heats quickly, easy to clean, looks great on the counter.", False),
    (2, "Smells of plastic every time it boils, even after ten rinses.", False),
    (4, "Nice weight, pours cleanly.", False),
    (1, "Missed three promised slots, then it came at 11pm with no knock.", True),
    (5, "Our office loves it.", False),
    (3, "Water gauge is hard to read from the side.", False),
    (2, "Packaging was torn and the manual missing when it reached me.", True),
    (4, "Works well; the base swivels nicely for left-handers.", False),
    (5, "Fastest kettle I have owned.", False),
    (1, "Leaks from the bottom seam onto the base. Dangerous.", False),
    (3, "Had to collect it from the depot because nobody attempted to bring it.", True),
    (4, "Good, though the lid opens a bit too fast.", False),
    (5, "Brilliant, would buy again.", False),
    (2, "Rattles when boiling and the lid steams up the cupboard above.", False),
    (3, "It was stuck at a sorting hub for a fortnight before anyone moved it.", True),
    (4, "Handsome design, does the job.", False),
    (5, "Silent compared with my old one.", False),
    (1, "The glass panel cracked the first time I filled it.", False),
    (2, "Courier marked it as refused, which I never did; second attempt took ages.", True),
    (4, "Auto shut-off works reliably.", False),
    (3, "Bit pricey for what it is.", False),
    (5, "Great kettle and it came a day early.", False),
    (2, "The base wobbles on the counter.", False),
    (1, "Arrived in pieces. The outer carton had clearly been dropped.", True),
    (4, "Easy to descale, simple controls.", False),
    (5, "Perfect for a small kitchen.", False),
    (3, "Keep-warm mode would have been nice.", False),
    (2, "The thermostat clicks off before the water has actually boiled.", False),
    (4, "Boils fast and switches off on its own.", False),
    (1, "Left on the doorstep in the rain for hours; the box fell apart.", True),
    (5, "No complaints at all.", False),
    (3, "The spout dribbles a little.", False),
    (4, "Solid build, steady base.", False),
    (2, "Delivery window was 8am to 8pm and it still came the day after.", True),
    (5, "Lovely matte finish.", False),
    (1, "Plastic taste in the water. Returned it.", False),
    (4, "Reliable so far, three months in.", False),
    (3, "It is just a kettle, does the job.", False),
    (2, "The parcel had been opened and re-taped before it got to me.", True),
    (5, "Gift for my mum, she loves it.", False),
    (4, "Minimal design, easy to fill through the spout.", False),
    (1, "Shut-off failed and it boiled dry. Avoid.", False),
    (3, "Decent, but the cable storage is fiddly.", False),
    (5, "Fast and quiet, very happy.", False),
]


def reviews() -> str:
    return "".join(
        f"#{n:02d} {'*' * stars}{'.' * (5 - stars)} ({stars}/5) {text}\n"
        for n, (stars, text, _) in enumerate(_REVIEWS, 1)
    )


def reviews_truth() -> tuple[int, float]:
    """(how many reviews complain about the delivery, their average star rating)."""
    stars = [s for s, _, about_delivery in _REVIEWS if about_delivery]
    return len(stars), round(sum(stars) / len(stars), 2)


def is_delivery_complaint(line: str) -> bool:
    """Whether a line of ``reviews()`` is one of the delivery complaints."""
    return any(text in line for _, text, about_delivery in _REVIEWS if about_delivery)
