"""``TwoStepAdapter``: the main LM answers in its own words; a second LM pulls out the fields.

Useful for models that reason well but follow output formats badly (reasoning models): the
first call asks only for a thorough answer in free text, the second call — to
``extraction_model``, usually a small fast model — reads that text with the :class:`JSONAdapter`
and returns the typed output fields::

    adapter = TwoStepAdapter(extraction_model=LM("openai/gpt-4o-mini"))
    with context(lm=LM("openai/o3-mini"), adapter=adapter):
        Predict("question -> answer: float")(question="...")
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import AdapterParseError, ConfigurationError
from ..signatures import InputField, Signature
from ..signatures.types import type_name
from .base import Adapter
from .json_adapter import JSONAdapter
from .values import format_output_value, format_value


class TwoStepAdapter(Adapter):
    name = "TwoStepAdapter"

    def __init__(self, extraction_model: Any, callbacks: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(callbacks)
        if extraction_model is None or isinstance(extraction_model, str) or not callable(extraction_model):
            raise ConfigurationError("TwoStepAdapter(extraction_model=...) needs an LM object, e.g. "
                                     "LM('openai/gpt-4o-mini').")
        self.extraction_model = extraction_model
        self.extraction_adapter = JSONAdapter(callbacks=callbacks)

    # --- the first call: free text -----------------------------------------------------------------
    def format_field_description(self, signature: Any) -> str:
        def lines(fields: dict[str, Any]) -> str:
            return "\n".join(f"{i}. `{name}` ({type_name(info.annotation)})" + (f": {info.desc}" if info.desc else "")
                             for i, (name, info) in enumerate(fields.items(), 1))

        parts = []
        if signature.input_fields:
            parts.append("The request gives you:\n" + lines(signature.input_fields))
        parts.append("Your answer must make these final results clear:\n" + lines(signature.output_fields))
        return "\n\n".join(parts)

    def format_reply_template(self, signature: Any) -> str:
        return ("Answer in your own words. Explain your reasoning in enough detail that another reader can "
                "find each final result in your answer.")

    def format_task_description(self, signature: Any) -> str:
        return "Your task:\n" + signature.instructions

    def format_user_message_content(self, signature: Any, inputs: dict[str, Any], prefix: str = "",
                                    suffix: str = "", main_request: bool = False) -> str:
        parts = [prefix.strip()] if prefix.strip() else []
        parts += [f"{name}: {format_value(inputs[name])}" for name in signature.input_fields if name in inputs]
        if suffix.strip():
            parts.append(suffix.strip())
        return "\n".join(parts)

    def format_outputs(self, signature: Any, outputs: dict[str, Any]) -> str:
        return "\n".join(f"{name}: {format_output_value(outputs[name])}"
                         for name in signature.output_fields if name in outputs)

    # --- the second call: extraction -----------------------------------------------------------------
    def extraction_signature(self, signature: Any) -> Any:
        """``text -> <the original outputs>``, with instructions to read them from the text."""
        fields: dict[str, Any] = {"text": (str, InputField(desc="an answer written in free text"))}
        for name, info in signature.output_fields.items():
            fields[name] = (info.annotation, info)
        return Signature(fields, "Read the text and write down the value of each output field it states. "
                                 "Copy the values; do not solve the task again.")

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        """The output fields of ``completion``, read by ``extraction_model`` (one call)."""
        with self._extraction(signature, completion) as (extractor, done):
            return done(self.extraction_adapter(self.extraction_model, {}, extractor, [], {"text": completion}))

    async def acall(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[Any],
                    inputs: dict[str, Any]) -> list[dict[str, Any]]:
        # as Adapter.acall, with the extraction call awaited too (parse() makes it synchronously)
        messages, kwargs = self._request(lm, lm_kwargs, signature, demos, inputs)
        results = []
        for text in await lm.acall(messages=messages, **kwargs):
            with self._extraction(signature, text) as (extractor, done):
                results.append(done(await self.extraction_adapter.acall(self.extraction_model, {}, extractor, [],
                                                                        {"text": text})))
        return results

    @contextlib.contextmanager
    def _extraction(self, signature: Any, completion: str) -> Iterator[tuple[Any, Callable[[Any], dict[str, Any]]]]:
        """Around one extraction call (sync or async): yields the extraction signature and a function
        that takes the extraction adapter's results and returns the fields; a reply the extraction
        model gets wrong, or none, is an :class:`AdapterParseError` about ``completion``."""
        def done(results: list[dict[str, Any]]) -> dict[str, Any]:
            if not results:
                raise AdapterParseError("Failed to parse response from the original completion: the extraction "
                                        "model returned nothing.", adapter_name=self.name, signature=signature,
                                        lm_response=completion, field=None, parsed_result={})
            return results[0]

        try:
            yield self.extraction_signature(signature), done
        except AdapterParseError as exc:
            if exc.adapter_name == self.name:
                raise
            raise AdapterParseError(
                "Failed to parse response from the original completion: the extraction model's reply did not "
                "parse. Use a stronger extraction_model or simpler output types.",
                adapter_name=self.name, signature=signature, lm_response=completion, field=exc.field,
                parsed_result=exc.parsed_result) from exc
