"""Results files after a crash: cut at every byte, recovered to whole images, appended exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from leukedge.device.scoring.rows import image_rows
from leukedge.device.scoring.stores import CsvStore, JsonlStore
from leukedge.errors import InvalidInputError

RUN = {"model": "abc123def456", "precision": "int8", "backend": "onnxruntime"}


def _image(source: str, n: int, mode: str = "smear") -> list:
    cells = [{"cell": k, "bbox": [k, 2 * k, 10, 12], "area": 100 + k} for k in range(n)]
    return image_rows(source, mode, cells, [0.1 * (k + 1) for k in range(n)], ["hem"] * n, RUN)


IMAGES = [
    ("/data/UID_3_1_1_all.png", 1),
    ('/data/odd, "name"\nwith newline.png', 3),  # CSV quoting across lines
    ("/data/empty.png", 0),
    ("/data/smear é.png", 2),
]


def _write(store_cls, path: Path, images) -> None:
    store = store_cls(path, RUN)
    store.start()
    for source, n in images:
        store.write(_image(source, n))
        store.flush()
    store.close()


@pytest.mark.parametrize("store_cls", [JsonlStore, CsvStore])
def test_a_cut_at_any_byte_keeps_whole_images_and_resumes_exactly_once(tmp_path, store_cls) -> None:
    full = tmp_path / f"full{store_cls.suffix}"
    _write(store_cls, full, IMAGES)
    data = full.read_bytes()
    reference = list(store_cls(full, RUN).read())
    assert len(reference) == 1 + 3 + 1 + 2
    for cut in range(len(data) + 1):
        path = tmp_path / f"cut{store_cls.suffix}"
        path.write_bytes(data[:cut])
        store = store_cls(path, RUN)
        done = store.start()
        kept = [src for src, _ in IMAGES if src in done]
        assert kept == [src for src, _ in IMAGES[: len(kept)]], f"cut at {cut}: not a prefix"
        todo = [(src, n) for src, n in IMAGES if src not in done]
        for source, n in todo:  # what --resume scores again
            store.write(_image(source, n))
            store.flush()
        store.close()
        rows = list(store_cls(path, RUN).read())
        assert rows == reference, f"cut at byte {cut}"
        assert path.read_bytes() == data, f"cut at byte {cut}"


@pytest.mark.parametrize("store_cls", [JsonlStore, CsvStore])
def test_damage_before_the_end_is_refused_not_guessed(tmp_path, store_cls) -> None:
    path = tmp_path / f"r{store_cls.suffix}"
    _write(store_cls, path, [("/a.png", 2), ("/b.png", 1)])
    lines = path.read_bytes().splitlines(keepends=True)
    first_row = 1 if store_cls is CsvStore else 0
    edited = b"".join(lines[: first_row + 1] + lines[first_row + 2 :])  # a row of /a.png removed
    path.write_bytes(edited)
    with pytest.raises(InvalidInputError, match="has only 1 row"):
        store_cls(path, RUN).start()
    assert path.read_bytes() == edited
    path.write_bytes(b"".join([*lines[: first_row + 1], b"garbage\n", *lines[first_row + 1 :]]))
    with pytest.raises(InvalidInputError, match="is not a complete score row"):
        store_cls(path, RUN).start()


def test_a_foreign_one_line_file_is_not_taken_for_crash_damage(tmp_path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_bytes(b'{"note": "mine"}')  # no newline: looks cut, but is not one of our rows
    with pytest.raises(InvalidInputError, match="not the start of a score row"):
        JsonlStore(path, RUN).start()
    assert path.read_bytes() == b'{"note": "mine"}'


def test_csv_with_only_a_cut_header_starts_afresh(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(CsvStore.header[:10])
    store = CsvStore(path, RUN)
    assert store.start() == set()
    store.write(_image("/a.png", 1))
    store.close()
    assert path.read_bytes().startswith(CsvStore.header) and len(list(CsvStore(path, RUN).read())) == 1


def test_parquet_parts_survive_a_crash_and_merge_once(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    from leukedge.device.scoring.parquet_store import ParquetStore

    out = tmp_path / "r.parquet"
    store = ParquetStore(out, RUN)
    store.start()
    store.write(_image("/a.png", 2))
    store.flush(force=True)
    store.write(_image("/b.png", 1))  # buffered, never written: lost with the "crash"
    (store.parts / "part-000002.tmp").write_bytes(b"half a part")  # killed while writing a part
    del store
    again = ParquetStore(out, RUN)
    assert again.start() == {"/a.png"}
    assert not list(again.parts.glob("*.tmp"))
    again.write(_image("/b.png", 1))
    again.close()
    assert not again.parts.exists()
    rows = list(ParquetStore(out, RUN).read())
    assert Counter(r["source"] for r in rows) == {"/a.png": 2, "/b.png": 1}
    assert rows[0]["bbox"] == [0, 0, 10, 12] and rows[0]["p_all"] == pytest.approx(0.1)

    # Killed after the merge's rename, before the parts were removed: the merged file wins.
    third = ParquetStore(out, RUN)
    third.start()
    third.write(_image("/c.png", 1))
    third.flush(force=True)
    third.write(_image("/a.png", 2))  # a part repeating an image already merged
    third.flush(force=True)
    assert Counter(r["source"] for r in ParquetStore(out, RUN).read()) == {"/a.png": 2, "/b.png": 1, "/c.png": 1}
    third.close()
    assert Counter(r["source"] for r in ParquetStore(out, RUN).read()) == {"/a.png": 2, "/b.png": 1, "/c.png": 1}


def test_parquet_refuses_another_models_parts(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    from leukedge.device.scoring.parquet_store import ParquetStore

    out = tmp_path / "r.parquet"
    store = ParquetStore(out, RUN)
    store.start()
    store.write(_image("/a.png", 1))
    store.flush(force=True)
    with pytest.raises(InvalidInputError, match="abc123def456 \\(int8, onnxruntime\\).*other"):
        ParquetStore(out, {**RUN, "model": "other"}).start()
