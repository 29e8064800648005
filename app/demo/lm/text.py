"""The text the language model learns: the glossary's own entries, as prose and as chat turns.

Tokens are UTF-8 bytes (0-255, so any Unicode a user types is valid input) plus a few special
tokens that frame chat turns. An entry is held out for validation by a stable hash of its
slug, so the split never changes when other entries are added.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from app.content import read_corpus
from app.content.files import TermFile

# Special tokens follow the 256 byte values. A chat template renders turns with them.
SPECIAL_TOKENS = ("<|bos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
BYTE_VOCAB = 256
SPECIAL_IDS = {name: BYTE_VOCAB + i for i, name in enumerate(SPECIAL_TOKENS)}
BOS, SYSTEM, USER, ASSISTANT, END = (SPECIAL_IDS[name] for name in SPECIAL_TOKENS)
VOCAB_SIZE = BYTE_VOCAB + len(SPECIAL_TOKENS)
_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
VALIDATION_SHARE = 10  # one entry in ten (by hash) is held out


def encode(text: str, *, specials: bool = False) -> list[int]:
    """UTF-8 bytes; with specials=True the marker strings become their special ids."""
    if not specials:
        return list(text.encode("utf-8"))
    ids: list[int] = []
    pos = 0
    for match in _SPECIAL_RE.finditer(text):
        ids += text[pos : match.start()].encode("utf-8")
        ids.append(SPECIAL_IDS[match.group()])
        pos = match.end()
    return ids + list(text[pos:].encode("utf-8"))


def decode(ids: list[int]) -> str:
    """Bytes back to text (an incomplete UTF-8 sequence shows as U+FFFD); specials by name."""
    out: list[str] = []
    run = bytearray()
    for i in ids:
        if i < BYTE_VOCAB:
            run.append(i)
            continue
        out.append(run.decode("utf-8", errors="replace"))
        run.clear()
        out.append(token_name(i))
    out.append(run.decode("utf-8", errors="replace"))
    return "".join(out)


def token_name(i: int) -> str:
    """How one token is shown: a special's name, a printable byte, or <0xNN>."""
    if i >= BYTE_VOCAB:
        return SPECIAL_TOKENS[i - BYTE_VOCAB] if i < VOCAB_SIZE else f"<{i}>"
    c = chr(i)
    return c if c.isprintable() and i < 128 else f"<0x{i:02X}>"


_LINK = re.compile(r"\[\[([a-z0-9-]+)(?:\|([^\]]+))?\]\]")
_MARKUP = re.compile(r"[`*_]")


def plain(markdown: str, titles: dict[str, str]) -> str:
    """Entry Markdown as plain prose: [[slug]] links become the linked entry's title."""
    text = _LINK.sub(lambda m: m.group(2) or titles.get(m.group(1), m.group(1)), markdown)
    return _MARKUP.sub("", text).strip()


def entry_text(term: TermFile, titles: dict[str, str]) -> str:
    """One entry as a short article."""
    parts = [term.title, plain(term.summary, titles), plain(term.definition, titles)]
    parts += [plain(term.background, titles), plain(term.usage_note, titles)]
    return "\n".join(parts) + "\n\n"


def chat_turns(term: TermFile, titles: dict[str, str]) -> list[tuple[str, str]]:
    """(role, text) turns of a short chat about the entry."""
    return [
        ("user", f"What is {term.title}?"),
        ("assistant", plain(term.summary, titles)),
    ]


def render_chat(turns: list[tuple[str, str]], *, open_reply: bool = False) -> str:
    """The chat template: each turn framed by its role's token and <|end|>. With open_reply
    the text ends with an open assistant turn, ready for the model to answer."""
    body = "".join(f"<|{role}|>{text}<|end|>" for role, text in turns)
    return "<|bos|>" + body + ("<|assistant|>" if open_reply else "")


def record_json(slug: str, term: TermFile) -> str:
    """The entry as a one-line JSON record (what structured output is constrained to)."""
    return json.dumps({"term": term.title, "category": term.category}, ensure_ascii=False)


def held_out(slug: str) -> bool:
    return int(hashlib.sha256(slug.encode()).hexdigest(), 16) % VALIDATION_SHARE == 0


@dataclass(frozen=True)
class LMText:
    """Everything the model is trained and validated on, as token ids."""

    train: list[int]
    val: list[int]
    val_slugs: tuple[str, ...]
    titles: dict[str, str]
    categories: tuple[str, ...]
    digest: str  # sha256 of the token ids: part of the model's identity

    @property
    def train_bytes(self) -> int:
        return len(self.train)


def build_text(terms: dict[str, TermFile]) -> LMText:
    """Prose, chat turns and JSON records of every entry, split by entry."""
    titles = {slug: t.title for slug, t in terms.items()}
    train: list[int] = []
    val: list[int] = []
    val_slugs: list[str] = []
    for slug in sorted(terms):
        term = terms[slug]
        doc = entry_text(term, titles)
        doc += render_chat(chat_turns(term, titles)) + "\n"
        doc += record_json(slug, term) + "\n\n"
        ids = encode(doc, specials=True)
        if held_out(slug):
            val += ids
            val_slugs.append(slug)
        else:
            train += ids
    digest = hashlib.sha256(json.dumps([train, val]).encode()).hexdigest()
    categories = tuple(sorted({t.category for t in terms.values()}))
    return LMText(train, val, tuple(val_slugs), titles, categories, digest)


def read_text(data_dir: Path) -> LMText:
    """The text of the glossary under data_dir (validated like any load)."""
    return build_text(read_corpus(data_dir).terms)


DATA_DIR = Path(__file__).resolve().parents[3] / "data"  # the repository's own entries


@functools.cache
def glossary_text() -> LMText:
    """The repository's glossary as the model's text, read once per process: the text every
    experiment engine scores, counts or adapts on (never written to)."""
    return read_text(DATA_DIR)
