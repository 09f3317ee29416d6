"""Captions and the word-level tokenizer of the shot world.

Captions are written from the script only, so they name ids ("Character 2", "place B") and actions, never
how anything looks. A scene has a global caption (its cast and places) and one caption per shot:

    Characters 0, 3 and 5. Places A, B and C.
    Place B. Camera pans left. Character 3 walks left. Character 0 runs in from the right.

The vocabulary ships with the package (``moc/world/vocab.txt``, one word per line, line number = token id),
so tokenizing needs no network. Id 0 is the padding token, id 1 the unknown-word token.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from importlib import resources

from moc.world.script import Action, Script, Shot

PAD = "<pad>"
UNK = "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


def _list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def global_caption(script: Script) -> str:
    """The scene's global caption: its cast and its places, by id."""
    if not script.cast:
        cast = "No characters."
    elif len(script.cast) == 1:
        cast = f"Character {script.cast[0]}."
    else:
        cast = f"Characters {_list([str(c) for c in script.cast])}."
    places = (
        f"Place {script.places[0]}." if len(script.places) == 1 else f"Places {_list(list(script.places))}."
    )
    return f"{cast} {places}"


def action_phrase(action: Action) -> str:
    """``"Character 2 walks left."`` and the like (speeds <= 2 walk, faster ones run)."""
    who = f"Character {action.id}"
    if action.motion == "still":
        return f"{who} stands still."
    verb = "walks" if action.speed <= 2 else "runs"
    if action.event == "enter":
        # Moving right means coming in from the left edge, and vice versa.
        return f"{who} {verb} in from the {'left' if action.motion == 'right' else 'right'}."
    if action.event == "leave":
        return f"{who} {verb} out to the {action.motion}."
    return f"{who} {verb} {action.motion}."


def shot_caption(shot: Shot) -> str:
    """One shot's caption: place, camera, then each character in lane order (top to bottom)."""
    camera = {
        "static": "Camera is static.",
        "pan_left": "Camera pans left.",
        "pan_right": "Camera pans right.",
    }
    people = " ".join(action_phrase(a) for a in shot.characters) or "Nobody is there."
    return f"Place {shot.place}. {camera[shot.camera]} {people}"


def shot_captions(script: Script) -> tuple[str, ...]:
    return tuple(shot_caption(shot) for shot in script.shots)


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; punctuation is dropped."""
    return _WORD.findall(text.lower())


def caption_length(max_characters_per_shot: int) -> int:
    """Tokens needed by the longest shot caption with up to this many characters.

    Place (2) + camera (3) + per character at most 7 ("character 2 runs in from the left"); or 3 for nobody.
    """
    return 5 + max(3, 7 * max_characters_per_shot)


def global_caption_length(max_cast: int, max_places: int) -> int:
    """Tokens needed by the longest global caption for scenes of at most this many characters and places."""
    # "characters 0 3 and 5" is n + 2 tokens ("no characters" / "character 0": 2); places likewise.
    return (2 + max_cast) + (2 + max_places)


class Vocabulary:
    """A word-level vocabulary: ``encode`` text to ids, ``decode`` ids to text.

    Example:
        >>> vocab = Vocabulary.default()
        >>> vocab.decode(vocab.encode("Place B. Camera is static.", length=6))
        'place b camera is static'
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.words: tuple[str, ...] = tuple(words)
        if len(self.words) < 2 or self.words[0] != PAD or self.words[1] != UNK:
            raise ValueError(f"a vocabulary must start with {PAD!r} and {UNK!r}")
        if len(set(self.words)) != len(self.words):
            raise ValueError("a vocabulary must not list a word twice")
        self.ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    @functools.cache
    def default(cls) -> Vocabulary:
        """The vocabulary shipped with the package (``moc/world/vocab.txt``)."""
        text = resources.files("moc.world").joinpath("vocab.txt").read_text(encoding="utf-8")
        return cls(line.strip() for line in text.splitlines() if line.strip())

    def __len__(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, text: str, length: int | None = None) -> list[int]:
        """Token ids of ``text``; unknown words become ``unk_id``.

        Args:
            text: the caption.
            length: pad with ``pad_id`` to exactly this many tokens.

        Raises:
            ValueError: if the text has more than ``length`` tokens (captions are never cut silently).
        """
        ids = [self.ids.get(word, self.unk_id) for word in tokenize(text)]
        if length is not None:
            if len(ids) > length:
                raise ValueError(f"caption has {len(ids)} tokens, more than length={length}: {text!r}")
            ids += [self.pad_id] * (length - len(ids))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` joined by spaces, padding left out."""
        return " ".join(self.words[int(i)] for i in ids if int(i) != self.pad_id)


__all__ = [
    "PAD",
    "UNK",
    "Vocabulary",
    "action_phrase",
    "caption_length",
    "global_caption",
    "global_caption_length",
    "shot_caption",
    "shot_captions",
    "tokenize",
]
