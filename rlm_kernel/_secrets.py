"""Keep secrets out of everything rlm_kernel writes or sends to a model.

The model's code runs with the process environment, so it can print an API key. Every observation sent
back to the model and every trajectory line passes through ``Redactor.scrub``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
REDACTED = "[redacted]"


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found = {s for s in secrets if s and len(s) >= 8}
        found.update(
            value
            for name, value in os.environ.items()
            if _SECRET_NAME.search(name) and len(value) >= 8
        )
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
