"""The language model's parts: tokenizer, text split, determinism, KV cache, weights store,
and the service that loads or trains it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from app.content import read_corpus
from app.demo.lm import text as lmtext
from app.demo.lm.config import TINY, LMSpec
from app.demo.lm.generate import Sampling, Stepper, beam_search, generate, sequence_logprob
from app.demo.lm.service import LanguageModelService, ModelFailed, ModelTraining
from app.demo.lm.training import train, weights_hash
from tests.conftest import PATIENCE_S
from tests.factories import write_corpus
from tests.lm_fixtures import DATA_DIR, tiny_lm

# Ten steps are enough to tell two trainings apart.
BRIEF = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, steps=10, eval_every=5))


@pytest.mark.parametrize("text", ["plain ascii", "Größe ≥ 1 — 日本語 🙂", "<|end|> as text", ""])
def test_bytes_round_trip_any_unicode(text: str) -> None:
    ids = lmtext.encode(text)
    assert all(0 <= i < lmtext.BYTE_VOCAB for i in ids)
    assert lmtext.decode(ids) == text


def test_special_tokens_are_single_ids_only_when_asked() -> None:
    chat = lmtext.render_chat([("user", "Hi?")], open_reply=True)
    ids = lmtext.encode(chat, specials=True)
    assert ids[0] == lmtext.BOS and lmtext.USER in ids and ids[-1] == lmtext.ASSISTANT
    assert lmtext.decode(ids) == chat
    assert lmtext.END not in lmtext.encode(chat)  # typed by a user, the markers are bytes


def test_the_split_holds_out_whole_entries() -> None:
    t = lmtext.read_text(DATA_DIR)
    assert t.val_slugs and len(t.val) > 1000 and len(t.train) > 10 * len(t.val) // 2
    terms = read_corpus(DATA_DIR).terms
    train_bytes = bytes(i for i in t.train if i < lmtext.BYTE_VOCAB)
    for slug in t.val_slugs:  # a held-out entry's definition is never trained on
        definition = lmtext.plain(terms[slug].definition, t.titles).encode()
        assert definition not in train_bytes and definition in bytes(
            i for i in t.val if i < lmtext.BYTE_VOCAB
        )
    assert all(lmtext.held_out(s) for s in t.val_slugs)
    assert not any(lmtext.held_out(s) for s in t.titles if s not in t.val_slugs)


def test_two_trainings_from_one_seed_give_one_weights_hash() -> None:
    t = lmtext.read_text(DATA_DIR)
    a, b = train(BRIEF, t), train(BRIEF, t)
    assert a.weights_hash == b.weights_hash
    other = dataclasses.replace(BRIEF, train=dataclasses.replace(BRIEF.train, seed=7))
    assert train(other, t).weights_hash != a.weights_hash
    assert weights_hash(a.model.state_dict()) == a.weights_hash


def test_training_lowers_validation_loss() -> None:
    lm = tiny_lm()
    first, last = lm.log.val_loss[0][1], lm.log.val_loss[-1][1]
    assert last < first - 1.0, lm.log.val_loss
    assert sorted(lm.checkpoints) == [s for s, _ in lm.log.val_loss]


def test_the_kv_cache_gives_the_logits_of_a_full_forward() -> None:
    model = tiny_lm().model
    ids = lmtext.encode("Attention weighs every earlier token")
    stepper = Stepper(model, ids[:5])
    cached = [stepper.logits]
    for token in ids[5:]:
        cached.append(stepper.push(token))
    with torch.no_grad():
        full, _ = model(torch.tensor([ids]))
    for k, logits in enumerate(cached):
        torch.testing.assert_close(logits, full[0, 4 + k], atol=1e-4, rtol=1e-4)


def test_generation_slides_past_the_context_window() -> None:
    model = tiny_lm().model
    g = torch.Generator().manual_seed(0)
    out = generate(model, lmtext.encode("The"), 3 * model.config.block_size, Sampling(), g)
    assert len(out) == 3 * model.config.block_size


def test_beam_scores_are_the_sequences_log_probabilities() -> None:
    model = tiny_lm().model
    prompt = lmtext.encode("A neural network ")
    beams = beam_search(model, prompt, 12, 3)
    assert [s for _, s in beams] == sorted((s for _, s in beams), reverse=True)
    for seq, score in beams:
        assert sequence_logprob(model, prompt, seq) == pytest.approx(score, abs=1e-3)


def _service(cache: Path, spec: LMSpec = BRIEF) -> LanguageModelService:
    return LanguageModelService(spec, DATA_DIR, cache)


def test_the_service_trains_once_then_loads_from_the_cache(tmp_path: Path) -> None:
    first = _service(tmp_path)
    with pytest.raises(ModelTraining) as waiting:
        first.trained()
    assert waiting.value.progress.state == "waiting" and waiting.value.retry_after_s >= 1
    first.start()
    trained = first.wait(timeout=PATIENCE_S)
    assert first.progress().source == "trained"
    assert list((tmp_path / "lm").glob("*.pt")), "the weights were not written to the cache"

    again = _service(tmp_path)
    again.start()
    loaded = again.wait(timeout=PATIENCE_S)
    assert again.progress().source == "file"
    assert loaded.weights_hash == trained.weights_hash
    assert loaded.log.val_loss == trained.log.val_loss


def test_a_damaged_cache_file_is_trained_afresh_and_replaced(tmp_path: Path) -> None:
    a = _service(tmp_path)
    a.start()
    good = a.wait(timeout=PATIENCE_S)
    (path,) = (tmp_path / "lm").glob("*.pt")
    path.write_bytes(b"not a model")
    again = _service(tmp_path)
    again.start()
    assert again.wait(timeout=PATIENCE_S).weights_hash == good.weights_hash
    assert again.progress().source == "trained" and path.read_bytes() != b"not a model"


def test_a_corpus_too_small_to_train_on_fails_clearly(tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "data")
    service = LanguageModelService(BRIEF, data, tmp_path / "cache")
    service.start()
    with pytest.raises(ModelFailed, match="could not be trained"):
        service.wait(timeout=PATIENCE_S)
    assert "too little text" in (service.progress().error or "")
