"""A light tokenizer for the decode engine: the ``tokenizers`` library plus the chat template.

transformers' tokenizer classes cost about 3.5 s per process to import and construct on a 2-core
machine; the Rust ``tokenizers`` library reads the same ``tokenizer.json`` in 0.2 s. This class
gives the engine the part of the transformers tokenizer API it uses — ``encode``, ``decode``,
``batch_decode``, ``apply_chat_template``, the special token ids, ``get_vocab`` — over a folder
written by ``save_pretrained`` (``tokenizer.json``, ``tokenizer_config.json`` and optionally
``chat_template.jinja``). Token ids are those of the transformers tokenizer of the same folder
(tested).

The chat template is a Jinja template that came with the model: it is rendered in Jinja's
immutable sandbox, as transformers does, so a hostile template cannot reach Python objects.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from typing import Any

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
TEMPLATE_FILE = "chat_template.jinja"


def can_load(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, TOKENIZER_FILE)) and os.path.isfile(os.path.join(folder, CONFIG_FILE))


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class TextTokenizer:
    """Encode/decode and chat-template rendering from a saved tokenizer folder (no transformers)."""

    def __init__(self, folder: str) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self._tokenizer = Tokenizer.from_file(os.path.join(folder, TOKENIZER_FILE))
        with open(os.path.join(folder, CONFIG_FILE), encoding="utf-8") as f:
            self.config: dict[str, Any] = json.load(f)
        template_path = os.path.join(folder, TEMPLATE_FILE)
        template = self.config.get("chat_template")
        if isinstance(template, list):  # named templates: the default one is the chat template
            template = next((t.get("template") for t in template if isinstance(t, dict)
                             and t.get("name") == "default"), None)
        if os.path.isfile(template_path):
            with open(template_path, encoding="utf-8") as f:
                template = f.read()
        self.chat_template: str | None = template if isinstance(template, str) else None
        self._template: Any = None
        added = self._tokenizer.get_added_tokens_decoder()
        self.all_special_ids = sorted(i for i, token in added.items() if token.special)
        self.model_max_length = int(self.config.get("model_max_length") or 10**30)
        self.bos_token_id = self._id_of("bos_token")
        self.eos_token_id = self._id_of("eos_token")
        self.unk_token_id = self._id_of("unk_token")
        self.pad_token_id = self._id_of("pad_token")

    def _id_of(self, name: str) -> int | None:
        text = _token_text(self.config.get(name))
        return None if text is None else self._tokenizer.token_to_id(text)

    def __len__(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def get_vocab(self) -> dict[str, int]:
        return dict(self._tokenizer.get_vocab(with_added_tokens=True))

    def backend_json(self) -> str:
        """The serialized ``tokenizers`` model (what transformers calls ``backend_tokenizer.to_str()``)."""
        return str(self._tokenizer.to_str())

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        # No clean_up_tokenization_spaces: transformers 5 does not apply it to BPE tokenizers either
        # (the only kind the compact decoder's architectures use), and it would corrupt JSON and code.
        return str(self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens))

    def batch_decode(self, sequences: Sequence[Sequence[int]], skip_special_tokens: bool = False) -> list[str]:
        return list(self._tokenizer.decode_batch([[int(i) for i in s] for s in sequences],
                                                 skip_special_tokens=skip_special_tokens))

    def _compiled_template(self) -> Any:
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str) -> None:
                raise ValueError(f"The model's chat template refused the messages: {message}")

            def strftime_now(format: str) -> str:
                return datetime.datetime.now().strftime(format)

            def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
                       sort_keys: bool = False) -> str:
                return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                                  sort_keys=sort_keys)

            environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                        extensions=["jinja2.ext.loopcontrols"])
            environment.globals["raise_exception"] = raise_exception
            environment.globals["strftime_now"] = strftime_now
            environment.filters["tojson"] = tojson
            self._template = environment.from_string(self.chat_template or "")
        return self._template

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = False,
                            tokenize: bool = True) -> Any:
        if not self.chat_template:
            raise ValueError("This tokenizer has no chat template.")
        special = {name: _token_text(self.config.get(name)) or ""
                   for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
        text = self._compiled_template().render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                                tools=None, documents=None, **special)
        return self.encode(text, add_special_tokens=False) if tokenize else text

