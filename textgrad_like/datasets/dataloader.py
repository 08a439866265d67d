"""``DataLoader``: turn Hugging Face datasets, CSV/JSON/Parquet files and DataFrames into Examples.

The method names and arguments follow DSPy's ``dspy.datasets.DataLoader`` so DSPy programs run
unchanged. Every file or hub dataset is read with ``datasets.load_dataset``; a folder written by
``Dataset.save_to_disk`` works too. ``datasets`` and ``pandas`` are imported only when used.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, TextgradLikeError
from ..primitives.example import Example
from .dataset import Dataset

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataLoader", "DATA_DIR_ENV", "load_hf_splits"]

logger = logging.getLogger(__name__)

#: Environment variable naming a folder with local copies of the hub datasets (see ``load_hf_splits``).
DATA_DIR_ENV = "TEXTGRAD_LIKE_DATA_DIR"

_BUILDER_BY_SUFFIX = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
}


class DatasetLoadError(TextgradLikeError, OSError):
    """A dataset could not be read from the hub, a local folder or local files."""


def _datasets_module() -> Any:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "Loading datasets needs the `datasets` package: pip install 'textgrad_like[data]' (or pip install datasets)"
        ) from exc
    return datasets


def _drop_unsupported_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove ``trust_remote_code`` when the installed ``datasets`` no longer takes it."""
    if "trust_remote_code" in kwargs:
        params = inspect.signature(_datasets_module().load_dataset).parameters
        if "trust_remote_code" not in params:
            logger.debug("datasets.load_dataset no longer takes trust_remote_code; dropping it")
            kwargs = {k: v for k, v in kwargs.items() if k != "trust_remote_code"}
    return kwargs


def _builder_for(data_files: Any) -> str:
    """Pick the ``load_dataset`` builder ("json", "csv", "parquet", ...) from the data files' suffixes."""
    if isinstance(data_files, (str, os.PathLike)):
        files = [data_files]
    elif isinstance(data_files, Mapping):
        files = [f for v in data_files.values() for f in ([v] if isinstance(v, (str, os.PathLike)) else v)]
    else:
        files = list(data_files)
    builders = set()
    for f in files:
        name = str(f).lower()
        if name.endswith(".gz"):
            name = name[:-3]
        suffix = Path(name).suffix
        if suffix not in _BUILDER_BY_SUFFIX:
            raise ConfigurationError(
                f"Cannot tell the format of data file {f!r}; use .json/.jsonl, .csv, .parquet or .arrow files"
            )
        builders.add(_BUILDER_BY_SUFFIX[suffix])
    if len(builders) != 1:
        raise ConfigurationError(f"data_files mix formats {sorted(builders)}; give files of one format")
    return builders.pop()


def _is_saved_to_disk(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def load_hf_splits(
    hub_id: str,
    config: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    data_files: Any = None,
    local_name: str | None = None,
    **kwargs: Any,
) -> Mapping[str, Iterable[Mapping[str, Any]]]:
    """Load all splits of a dataset, from local data when some is given, else from the hub.

    The first of these that applies is used:

    1. ``data_files``: local files (a path, a list, or ``{"train": ..., "test": ...}``), read with
       the builder their suffix names (``.jsonl`` -> "json", ``.parquet`` -> "parquet", ...).
    2. ``path``: a folder written by ``save_to_disk``, a folder of data files (``train.jsonl``,
       ``test.parquet``, ... optionally inside a sub-folder named ``config``), or another hub id.
    3. ``$TEXTGRAD_LIKE_DATA_DIR/<local_name>`` when that folder exists (same forms as ``path``).
    4. ``hub_id`` with ``config`` on the Hugging Face hub.

    Returns a mapping from split name to rows (dicts).
    """
    datasets = _datasets_module()
    kwargs = _drop_unsupported_kwargs(dict(kwargs))
    if data_files is not None:
        builder = _builder_for(data_files)
        if isinstance(data_files, os.PathLike):
            data_files = os.fspath(data_files)
        return _as_splits(datasets.load_dataset(builder, data_files=data_files, **kwargs))
    if path is None and local_name:
        root = os.environ.get(DATA_DIR_ENV)
        if root and (Path(root) / local_name).is_dir():
            path = Path(root) / local_name
            logger.info("Loading %s from %s (set by %s)", hub_id, path, DATA_DIR_ENV)
    if path is not None:
        local = Path(path)
        if local.is_dir():
            if _is_saved_to_disk(local):
                return _as_splits(datasets.load_from_disk(str(local)))
            if config and (local / config).is_dir():
                if _is_saved_to_disk(local / config):
                    return _as_splits(datasets.load_from_disk(str(local / config)))
                return _as_splits(datasets.load_dataset(str(local), data_dir=config, **kwargs))
            return _as_splits(datasets.load_dataset(str(local), **kwargs))
        if local.exists():
            return _as_splits(datasets.load_dataset(_builder_for(str(local)), data_files=str(local), **kwargs))
        hub_id = str(path)
    try:
        return _as_splits(datasets.load_dataset(hub_id, config, **kwargs))
    except (ConnectionError, OSError) as exc:
        raise DatasetLoadError(
            f"Could not load {hub_id!r} ({config or 'default'}) from the Hugging Face hub: {exc}. Without network, "
            f"pass path=<local folder> or data_files=<local files>, or set {DATA_DIR_ENV} to a folder holding "
            f"{local_name or '<name>'}/ with the data."
        ) from exc


def _as_splits(loaded: Any) -> Mapping[str, Iterable[Mapping[str, Any]]]:
    if isinstance(loaded, Mapping) or hasattr(loaded, "keys") and not hasattr(loaded, "features"):
        return {name: loaded[name] for name in loaded.keys()}
    return {"train": loaded}


def _check_keys(name: str, keys: Any, *, allow_none: bool) -> tuple[str, ...] | None:
    if keys is None:
        if allow_none:
            return None
        return ()
    if isinstance(keys, str) or not isinstance(keys, (tuple, list)):
        raise ConfigurationError(
            f"{name} must be a tuple of field names, e.g. ({keys!r},), got {type(keys).__name__}"
        )
    return tuple(keys)


def _to_examples(rows: Iterable[Mapping[str, Any]], fields: Sequence[str] | None,
                 input_keys: Sequence[str]) -> list[Example]:
    out = []
    for row in rows:
        keys = fields if fields else list(row.keys())
        try:
            record = {k: row[k] for k in keys}
        except KeyError as exc:
            raise ConfigurationError(
                f"Field {exc.args[0]!r} is not in the data; available fields: {list(row.keys())}"
            ) from None
        out.append(Example(record).with_inputs(*input_keys))
    return out


class DataLoader(Dataset):
    """Load examples from the Hugging Face hub, local files or DataFrames (DSPy's ``DataLoader`` API)."""

    def __init__(self) -> None:
        super().__init__()

    def from_huggingface(
        self,
        dataset_name: str,
        *args: Any,
        input_keys: tuple[str, ...] = (),
        fields: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> Mapping[str, list[Example]] | list[Example]:
        """Load a dataset with ``datasets.load_dataset(dataset_name, *args, **kwargs)``.

        Returns a dict from split name to Examples, or a list of Examples when ``split="..."`` names
        one split (a list of split names gives a dict keyed by those names). ``fields`` keeps only
        those columns; ``input_keys`` are marked as inputs. ``dataset_name`` can be a hub id or a
        local folder (also one written by ``save_to_disk``).
        """
        fields_t = _check_keys("fields", fields, allow_none=True)
        inputs_t = _check_keys("input_keys", input_keys, allow_none=False) or ()
        datasets = _datasets_module()
        kwargs = _drop_unsupported_kwargs(dict(kwargs))
        loaded = datasets.load_dataset(dataset_name, *args, **kwargs)
        split = kwargs.get("split")
        if isinstance(loaded, list) and isinstance(split, list):
            loaded = dict(zip(split, loaded, strict=True))
        if isinstance(loaded, Mapping) or (hasattr(loaded, "keys") and not hasattr(loaded, "features")):
            return {name: _to_examples(loaded[name], fields_t, inputs_t) for name in loaded.keys()}
        return _to_examples(loaded, fields_t, inputs_t)

    def _from_files(self, builder: str, file_path: Any, fields: Sequence[str] | None,
                    input_keys: Sequence[str]) -> list[Example]:
        inputs_t = _check_keys("input_keys", input_keys, allow_none=False) or ()
        if isinstance(file_path, os.PathLike):
            file_path = os.fspath(file_path)
        data = _datasets_module().load_dataset(builder, data_files=file_path)["train"]
        return _to_examples(data, list(fields) if fields else list(data.features), inputs_t)

    def from_csv(self, file_path: str, fields: list[str] | None = None,
                 input_keys: tuple[str, ...] = ()) -> list[Example]:
        """Read a CSV file (header row = field names) into Examples."""
        return self._from_files("csv", file_path, fields, input_keys)

    def from_json(self, file_path: str, fields: list[str] | None = None,
                  input_keys: tuple[str, ...] = ()) -> list[Example]:
        """Read a JSON Lines file (or a JSON list of records) into Examples."""
        return self._from_files("json", file_path, fields, input_keys)

    def from_parquet(self, file_path: str, fields: list[str] | None = None,
                     input_keys: tuple[str, ...] = ()) -> list[Example]:
        """Read a Parquet file into Examples."""
        return self._from_files("parquet", file_path, fields, input_keys)

    def from_pandas(self, df: pd.DataFrame, fields: list[str] | None = None,
                    input_keys: tuple[str, ...] = ()) -> list[Example]:
        """Turn each row of a DataFrame into an Example (values as pandas gives them)."""
        inputs_t = _check_keys("input_keys", input_keys, allow_none=False) or ()
        columns = list(fields) if fields is not None else list(df.columns)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ConfigurationError(f"Columns {missing} are not in the DataFrame; columns: {list(df.columns)}")
        return [Example({c: row[c] for c in columns}).with_inputs(*inputs_t) for _, row in df.iterrows()]

    def from_rm(self, num_samples: int, fields: list[str], input_keys: list[str]) -> list[Example]:
        """Fetch stored objects from the configured retriever (``settings.rm``) when it offers ``get_objects``."""
        from ..settings import settings

        rm = settings.get("rm")
        if rm is None:
            raise ConfigurationError("No retriever is configured. Set one with textgrad_like.configure(rm=...)")
        get_objects = getattr(rm, "get_objects", None)
        if get_objects is None:
            raise ConfigurationError(
                f"The configured retriever ({type(rm).__name__}) has no get_objects(); use a retriever that has one"
            )
        return _to_examples(get_objects(num_samples=num_samples, fields=fields), fields, tuple(input_keys))

    def sample(self, dataset: Sequence[Example], n: int, *args: Any, **kwargs: Any) -> list[Example]:
        """``n`` examples drawn without replacement (``random.sample``)."""
        if not isinstance(dataset, (list, tuple)):
            raise ConfigurationError(
                f"sample() takes a list of Examples, got {type(dataset).__name__}; pass list(dataset)"
            )
        if n > len(dataset):
            raise ConfigurationError(f"Cannot sample {n} examples from a dataset of {len(dataset)}; lower n")
        return random.sample(list(dataset), n, *args, **kwargs)

    def train_test_split(
        self,
        dataset: Sequence[Example],
        train_size: int | float = 0.75,
        test_size: int | float | None = None,
        random_state: int | None = None,
    ) -> Mapping[str, list[Example]]:
        """Shuffle and split into ``{"train": [...], "test": [...]}``.

        Sizes are counts (int) or fractions in (0, 1) (float). Without ``test_size`` the test split
        gets every example not in train. ``random_state`` makes the shuffle repeatable.
        """
        rng = random.Random(random_state) if random_state is not None else random
        shuffled = list(dataset)
        rng.shuffle(shuffled)
        total = len(shuffled)
        train_end = _split_count("train_size", train_size, total)
        if train_end is None:
            raise ConfigurationError("train_size must be an int count or a float fraction in (0, 1), got None")
        test_end = _split_count("test_size", test_size, total)
        if test_end is None:
            test_end = total - train_end
        if train_end + test_end > total:
            raise ConfigurationError(
                f"train_size ({train_end}) + test_size ({test_end}) exceed the {total} examples; lower them"
            )
        return {"train": shuffled[:train_end], "test": shuffled[train_end : train_end + test_end]}


def _split_count(name: str, size: int | float | None, total: int) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool):
        raise ConfigurationError(f"{name} must be an int or a float, got a bool")
    if isinstance(size, float):
        if not 0 < size < 1:
            raise ConfigurationError(f"{name} as a float is a fraction and must lie in (0, 1), got {size}")
        return int(total * size)
    if isinstance(size, int):
        if size < 0:
            raise ConfigurationError(f"{name} must be >= 0, got {size}")
        return size
    raise ConfigurationError(f"{name} must be an int count or a float fraction in (0, 1), got {size!r}")
