"""Typed signatures: what goes into an LM call and what must come out."""

from .field import FieldInfo, InputField, OutputField
from .signature import Signature, SignatureMeta, ensure_signature, infer_prefix, make_signature
from .types import parse_type, type_name

__all__ = ["Signature", "SignatureMeta", "InputField", "OutputField", "FieldInfo", "ensure_signature",
           "make_signature", "infer_prefix", "parse_type", "type_name"]
