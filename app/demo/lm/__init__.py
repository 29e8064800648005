"""The small language model every language-model experiment runs on.

    text.py      the glossary's entries as plain text and as chat turns; the byte tokenizer
    config.py    the model's and the training's sizes (FULL for the server, TINY for tests)
    gpt.py       a decoder-only transformer in the nanoGPT style (imports torch)
    training.py  training from a fixed seed, checkpoints, the weights' hash (imports torch)
    weights.py   where trained weights are kept: GLOSSARY_CACHE_DIR and, on PostgreSQL, the
                 database, so every worker shares one model
    service.py   trains in the background when none exists for the current content, code and
                 torch version; what a run asks for (the model) or is told (training, progress)

Nothing is downloaded: the text is the project's own entries, the weights are trained here.
"""
