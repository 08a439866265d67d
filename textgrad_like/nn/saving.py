"""Reading and writing saved programs: file formats, DSPy's layout, and what an LM state in a file may do.

``Module.save``/``Module.load`` (and ``textgrad_like.load``) call into this module; the rules it enforces:

- **Formats.** ``save("p.json")`` writes DSPy's layout (``{predictor name: {"traces", "train", "demos",
  "signature", "lm"}, "metadata": {...}}``, a lone predictor's state at the top level), so DSPy reads
  our files and we read DSPy's; ``metadata.format`` is :data:`STATE_FORMAT`, and parameters outside
  predictors (Variables, LoRA references) are under ``"state_dict"``. ``save("p.pkl")`` writes the
  same dict with cloudpickle; ``save(dir, save_program=True)`` pickles the whole program into
  ``dir/program.pkl`` with ``dir/metadata.json``. Files of the first format (top-level
  ``"format": LEGACY_FORMAT``) still load.
- **Pickles** are refused unless the caller passes ``allow_pickle=True`` (unpickling runs code).
- **All or nothing.** Everything in a file is checked (names, fields, values, weights files) before the
  program is changed; a file made for another program is a :class:`StateDictError` naming the mismatch.
- **LM state never redirects calls nor brings credentials.** Credential keys (``api_key``,
  ``client_secret``, ...: :func:`textgrad_like.lm.secrets.is_secret_key`) in a file are dropped, and so
  are endpoints (``api_base``, ``base_url``, ``model_list``) and local model paths unless the caller
  passes ``allow_unsafe_lm_state=True`` (DSPy's name); a URL's ``user:password@`` is dropped even then.
  A custom LM class named in a file is imported only with ``allow_unsafe_lm_state=True`` (as DSPy);
  without it loading is refused unless the predictor already has an LM of that class (kept).
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import StateDictError
from ..lm.base import LM_CLASS_STATE_KEY
from ..lm.secrets import is_secret_key, strip_mapping

logger = logging.getLogger(__name__)

STATE_FORMAT = "textgrad_like.program/2"  # in metadata.format of a file in DSPy's layout
LEGACY_FORMAT = "textgrad_like.program/1"  # top-level "format": state_dict + signatures + lms (still read)

# keys of an LM state that send calls elsewhere (DSPy's UNSAFE_LM_STATE_KEYS)
ENDPOINT_KEYS = frozenset({"api_base", "base_url", "model_list"})
# bookkeeping keys DSPy writes into an LM state that are not LM arguments
_DSPY_LM_KEYS = frozenset({"_dspy_lm_class", "finetuning_model", "launch_kwargs", "train_kwargs", "provider",
                           "engine", "prompt_cache"})
# DSPy's key for the LM class in a saved LM state; absent means DSPy's (or our) plain ``LM``
CLASS_KEY = LM_CLASS_STATE_KEY
_OWN_LM_CLASSES = frozenset({"textgrad_like.lm.lm.LM", "textgrad_like.lm.local.LocalLM"})
_BUILTIN_LM_CLASSES = frozenset({"dspy.clients.lm.LM", "dspy.LM", *_OWN_LM_CLASSES})
# what a predictor keeps when its saved LM state is empty or cannot be used
KEEP = object()


def serialize_object(value: Any) -> Any:
    """``value`` with pydantic models turned into JSON values (recursively through lists, tuples and
    dicts), as saved demos hold them (DSPy's ``dspy.predict.predict.serialize_object``)."""
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [serialize_object(v) for v in value]
    if isinstance(value, tuple):
        return tuple(serialize_object(v) for v in value)
    if isinstance(value, dict):
        return {k: serialize_object(v) for k, v in value.items()}
    return value


# --- files --------------------------------------------------------------------------------------------
def _version(pkg: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def dependency_versions() -> dict[str, str]:
    """DSPy's ``metadata.dependency_versions``: only keys DSPy knows, as DSPy writes them.

    DSPy's ``load()`` looks every key of this dict up in its own table (a ``KeyError`` for any
    other key), so our own versions go under ``metadata.versions`` (:func:`library_versions`).
    """
    cloudpickle = _version("cloudpickle")
    return {"python": ".".join(platform.python_version_tuple()[:2]),
            "cloudpickle": ".".join(cloudpickle.split(".")[:2])}


def library_versions() -> dict[str, str]:
    """Full versions of Python and the libraries a saved program depends on (``metadata.versions``)."""
    out = {"python": platform.python_version()}
    out.update({pkg: _version(pkg) for pkg in ("textgrad_like", "pydantic", "litellm", "cloudpickle")})
    return out


def read_state_file(path: str, allow_pickle: bool) -> Any:
    """The data in a ``.json`` or ``.pkl`` state file; typed errors for everything that can go wrong."""
    if os.path.isdir(path):
        raise StateDictError(f"{path} is a directory (a whole program saved with save_program=True); load it with "
                             "textgrad_like.load(path, allow_pickle=True) if you trust its source.")
    if path.endswith(".pkl"):
        if not allow_pickle:
            raise StateDictError(f"Loading .pkl files can run arbitrary code ({path}). Pass allow_pickle=True only "
                                 "for files you trust, or save as .json.")
        import cloudpickle

        try:
            with open(path, "rb") as f:
                return cloudpickle.load(f)
        except FileNotFoundError:
            raise StateDictError(f"No saved program at {path}.") from None
        except Exception as exc:  # a damaged pickle can raise almost anything
            raise StateDictError(f"{path} is not a readable pickle: {type(exc).__name__}: {exc}") from None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise StateDictError(f"No saved program at {path}.") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # ValueError covers invalid JSON and numbers longer than Python converts (4,300 digits)
        raise StateDictError(f"{path} is not a saved program (invalid JSON: {str(exc)[:200]}).") from None


def write_state_file(path: str, data: dict[str, Any]) -> None:
    """Serialise ``data`` fully, then replace ``path`` in one step (a failed save leaves no half file)."""
    if path.endswith(".pkl"):
        import cloudpickle

        blob = cloudpickle.dumps(data)
    else:
        try:
            blob = json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as exc:
            raise StateDictError(f"Cannot save {path} as JSON ({exc}). Save to a .pkl path for values JSON cannot "
                                 "hold, or save the whole program with save_program=True.") from None
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_state_path(path: str) -> None:
    if not (path.endswith(".json") or path.endswith(".pkl")):
        raise StateDictError(f"save(path) needs a path ending in .json or .pkl (or save_program=True with a "
                             f"directory), got {path!r}.")


def is_own_format(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("metadata"), dict) and \
        data["metadata"].get("format") == STATE_FORMAT


def is_legacy_format(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == LEGACY_FORMAT


def predictor_states(data: Any, root_is_predictor: bool) -> dict[str, Any]:
    """``{predictor name: state}`` from a DSPy ``program.json`` or a ``dump_state()`` dict (``metadata`` dropped)."""
    if not isinstance(data, dict):
        raise StateDictError(f"A saved program is a JSON object; got {type(data).__name__}.")
    states = {k: v for k, v in data.items() if k != "metadata"}
    if root_is_predictor and "signature" in states:
        return {"self": states}  # a single predictor's own state (DSPy's Predict.save)
    bad = [k for k, v in states.items() if not isinstance(v, dict)]
    if bad:
        raise StateDictError(f"Not a saved program: entries {bad[:5]} are not predictor states (dicts with 'demos' "
                             "and 'signature'). Was it written by save()/dump_state()?")
    return states


def mismatch_error(what: str, missing: list[str], unexpected: list[str], hint: str) -> StateDictError:
    err = StateDictError(f"{what} does not fit this program: missing keys {missing[:10]}, unexpected keys "
                         f"{unexpected[:10]}. {hint}")
    err.missing_keys = list(missing)  # type: ignore[attr-defined]
    err.unexpected_keys = list(unexpected)  # type: ignore[attr-defined]
    return err


# --- signatures ---------------------------------------------------------------------------------------
def signature_from_state(signature: Any, state: Any, where: str, strict: bool = True) -> Any:
    """A new signature class with the instructions and field prefixes/descriptions of ``state``.

    Fields are matched by ``name`` (our files) or by position (DSPy's files list ``prefix`` and
    ``description`` in field order). The file's values win, except DSPy's ``${name}`` placeholder
    ("no description written"), which keeps ours (e.g. our ChainOfThought's reasoning description).
    Nothing is modified; raises :class:`StateDictError` on a mismatch.
    """
    if not isinstance(state, dict):
        raise StateDictError(f"{where}: a signature state is a dict with 'instructions' and 'fields'.")
    instructions = state.get("instructions", signature.instructions)
    if not isinstance(instructions, str):
        raise StateDictError(f"{where}: the saved instructions must be text, got {type(instructions).__name__}.")
    fields = state.get("fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        raise StateDictError(f"{where}: a signature state's 'fields' must be a list of dicts.")
    names = list(signature.fields)
    if fields and all("name" in f for f in fields):
        saved = [f["name"] for f in fields]
        if strict and sorted(map(str, saved)) != sorted(names):
            raise StateDictError(f"{where}: the saved signature has fields {saved}, this program's has {names}. "
                                 "The file belongs to another program (or the signature changed).")
        pairs = [(f["name"], f) for f in fields if f["name"] in signature.fields]
    else:
        if strict and fields and len(fields) != len(names):
            raise StateDictError(f"{where}: the saved signature has {len(fields)} fields, this program's has "
                                 f"{len(names)} ({names}). The file belongs to another program.")
        pairs = list(zip(names, fields, strict=False))
    new = signature.with_instructions(instructions)
    for name, item in pairs:
        changes = {}
        if "description" in item or "desc" in item:
            changes["desc"] = item.get("description", item.get("desc"))
        if "prefix" in item:
            changes["prefix"] = item["prefix"]
        if not all(v is None or isinstance(v, str) for v in changes.values()):
            raise StateDictError(f"{where}: the description and prefix of field {name!r} must be text.")
        if changes.get("desc") == f"${{{name}}}":
            del changes["desc"]  # DSPy's "no description" placeholder
        if changes:
            new = new.with_updated_fields(name, **changes)
    return new


# --- LM state -----------------------------------------------------------------------------------------
def _class_path(lm: Any) -> str:
    return f"{type(lm).__module__}.{type(lm).__qualname__}"


def saved_lm_state(lm: Any) -> dict[str, Any] | None:
    """What a saved file records about a predictor's LM: its settings without any credential, and
    (as DSPy does, under DSPy's key) the class when it is not our ``LM``, so that loading keeps the
    predictor's own LM instead of building the wrong one."""
    if lm is None or not hasattr(lm, "dump_state"):
        return None
    state = lm.dump_state()
    if not isinstance(state, Mapping):
        return None
    state = strip_mapping(dict(state))
    if _class_path(lm) not in _OWN_LM_CLASSES:
        state[CLASS_KEY] = _class_path(lm)
    return state


def _without_userinfo(url: Any) -> Any:
    if not isinstance(url, str) or "@" not in url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def lm_from_state(current: Any, state: Any, where: str, allow_unsafe_lm_state: bool = False,
                  log: logging.Logger = logger) -> Any:
    """The LM a predictor should use after loading ``state`` (its saved LM settings), or :data:`KEEP`.

    Never imports a class, never keeps a credential from the file, and without
    ``allow_unsafe_lm_state`` never takes an endpoint or a local model path from it.
    """
    if state is None:
        return KEEP
    if not isinstance(state, dict):
        raise StateDictError(f"{where}: the saved LM state must be a dict or null, got {type(state).__name__}.")
    if "lora" in state:
        return KEEP  # an adapted local LM: the LoRA parameter itself carries the weights
    class_path = state.get(CLASS_KEY)
    if class_path is not None and class_path not in _BUILTIN_LM_CLASSES:
        if current is not None and _class_path(current) == class_path and not allow_unsafe_lm_state:
            return KEEP  # the predictor already has an LM of this class
        from ..lm.base import BaseLM

        try:  # imports the class only with allow_unsafe_lm_state=True (DSPy's rule); a StateDictError otherwise
            return BaseLM.load_state(strip_mapping(dict(state)), allow_custom_lm_class=allow_unsafe_lm_state)
        except StateDictError as exc:
            raise StateDictError(f"{where}: {exc}") from None
        except Exception as exc:
            raise StateDictError(f"{where}: cannot rebuild the saved LM of class {class_path!r} "
                                 f"({type(exc).__name__}: {exc}).") from None
    clean = {k: v for k, v in state.items() if k not in _DSPY_LM_KEYS}
    secrets = sorted(k for k in clean if is_secret_key(k))
    if secrets:
        logger.warning("%s: ignoring credential key(s) %s in the saved LM state; credentials come from the "
                       "environment or the LM you create, never from a file.", where, secrets)
    clean = strip_mapping({k: v for k, v in clean.items() if k not in secrets})
    model = clean.get("model")
    if not isinstance(model, str) or not model:
        raise StateDictError(f"{where}: the saved LM state has no model name.")
    unsafe = sorted(k for k in clean if k in ENDPOINT_KEYS)
    if model.startswith("local/"):
        unsafe.append("model (a local path)")
    if unsafe and not allow_unsafe_lm_state:
        log.warning("Ignoring LM key(s) %s from the saved state of %s (they choose where calls go). Pass "
                    "allow_unsafe_lm_state=True to load() for files you trust.", unsafe, where)
        if model.startswith("local/"):
            return KEEP
        clean = {k: v for k, v in clean.items() if k not in ENDPOINT_KEYS}
    for key in ENDPOINT_KEYS & set(clean):
        clean[key] = _without_userinfo(clean[key])
        if clean[key] is None:
            del clean[key]
    if current is not None and hasattr(current, "dump_state"):
        try:
            mine = saved_lm_state(current)
        except Exception:  # a custom LM whose dump_state fails: build from the file
            mine = None
        if mine is not None and {k: v for k, v in mine.items() if k not in _DSPY_LM_KEYS} == clean:
            return current  # same settings: keep the object (its history, cache and callbacks)
    from ..lm import LM

    try:
        return LM(**clean)
    except Exception as exc:
        raise StateDictError(f"{where}: cannot rebuild the saved LM ({type(exc).__name__}: {exc}).") from None


Plan = list[Callable[[], None]]
