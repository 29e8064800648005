"""The words people type are inflected: "system prompts", "embeddings", "fine-tuned". Entry
names are mostly singular and uninflected, so a query that is a name up to its endings
should find that name first. This is not a stemmer (the full-text index has its own): it
proposes a few spellings of the whole query for the exact-name lookup, nothing more."""

from itertools import islice, product

MAX_VARIANTS = 24  # names looked up per query, at most
MIN_LETTERS = 3  # shorter words ("is", "as", "gpu" stays whole: "gp" is not a name)


def word_forms(word: str) -> list[str]:
    """The word and its likely other forms: singular and plural, -ed / -ing and the base."""
    forms = [word]
    if len(word) < MIN_LETTERS or not word.isalpha():
        return forms
    # Extra spellings that name nothing cost one lookup and match nothing.
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")  # probabilities -> probability
    elif word.endswith("es"):
        forms += [word[:-2], word[:-1]]  # batches -> batch, caches -> cache
    elif word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])  # transformers -> transformer
    elif word.endswith("y") and word[-2:-1] not in "aeiou":
        forms.append(word[:-1] + "ies")  # ability -> abilities
    elif word.endswith(("s", "x", "ch", "sh")):
        forms.append(word + "es")  # loss -> losses
    else:
        forms.append(word + "s")  # law -> laws
    if word.endswith("ed") and len(word) > 4:
        stem = word[:-2]
        forms += [stem, stem + "e", stem + "ing", stem[:-1] + "ing" if stem.endswith("e") else ""]
    elif word.endswith("ing") and len(word) > 5:
        stem = word[:-3]
        forms += [stem, stem + "e", stem + "ed"]
    elif not word.endswith("s"):
        forms.append((word[:-1] if word.endswith("e") else word) + "ing")  # tune -> tuning
    return list(dict.fromkeys(f for f in forms if f))


def name_variants(words: list[str]) -> list[str]:
    """Other spellings of the whole query (the query itself excluded), one form per word."""
    combos = product(*(word_forms(word) for word in words))
    variants = (" ".join(combo) for combo in islice(combos, 1, MAX_VARIANTS + 1))
    return list(dict.fromkeys(variants))


def is_abbreviation(name: str) -> bool:
    """A name written as an abbreviation or acronym: one token, two or more capitals ("MMLU",
    "LoRA", "GPT-4"). Such a name in a longer query points at its entry ("MMLU benchmark")."""
    return " " not in name and sum(c.isupper() for c in name) >= 2
