"""The tiny random Wan2.1 parts of :mod:`stages.models.wan_tiny`, for the tests."""

from stages.models.wan_tiny import (  # noqa: F401 - re-exported for the tests
    TRANSFORMER,
    WORDS,
    save_tiny_base,
    tiny_text_encoder,
    tiny_tokenizer,
    tiny_transformer,
    tiny_vae,
)
