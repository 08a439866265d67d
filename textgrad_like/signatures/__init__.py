"""Typed signatures: what goes into an LM call and what must come out."""

from .field import FieldInfo, InputField, OutputField
from .signature import Signature, SignatureMeta, ensure_signature, make_signature
from .types import parse_type, type_name

__all__ = ["Signature", "SignatureMeta", "InputField", "OutputField", "FieldInfo", "ensure_signature",
           "make_signature", "parse_type", "type_name"]
