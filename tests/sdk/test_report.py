"""The slide report: counts and Wilson intervals checked against hand-computed values, bad lines, gallery, CLI."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from leukedge.bundle import write_bundle
from leukedge.cli import main
from leukedge.errors import InvalidInputError
from leukedge.manifest import Decision, Manifest
from leukedge.report import build_report, wilson_interval, write_report
from leukedge.report.counts import Z95
from leukedge.report.unique import OLD_FILE_NOTE
from leukedge.sinks.synthetic import crop_pool

# A known slide.  Band [0.4, 0.6): 0.45 and 0.55 are indeterminate, 0.6 is not.
#   field 0: 0.95 all, 0.10 hem, 0.45 hem, 0.55 all
#   field 1: no cells
#   field 2: 0.70 all, 0.20 hem, 0.30 hem, 0.05 hem, 0.60 all, and one cell not classified
# classified 9, ALL 4; indeterminate 2 (one ALL); outside the band 7, ALL 3.
KNOWN = [
    (0, 0, 0.95, "all"),
    (0, 1, 0.10, "hem"),
    (0, 2, 0.45, "hem"),
    (0, 3, 0.55, "all"),
    (1, None, None, None),
    (2, 0, 0.70, "all"),
    (2, 1, 0.20, "hem"),
    (2, 2, 0.30, "hem"),
    (2, 3, 0.05, "hem"),
    (2, 4, 0.60, "all"),
    (2, 5, None, None),
]


def record(frame, cell, p, label, model="0123456789ab", **extra):
    return {
        "frame": frame,
        "t_capture": 10.0 + frame,
        "t_result": 10.1 + frame,
        "source": f"field{frame}.png",
        "cell": cell,
        "bbox": None if cell is None else [10 * cell, 5, 30, 30],
        "area": None if cell is None else 700,
        "p_all": p,
        "label": label,
        "model": model,
        **extra,
    }


def write_known(path: Path, *, bad: bool = True, model="0123456789ab") -> None:
    lines = [json.dumps(record(*k, model=model)) for k in KNOWN]
    if bad:
        lines.insert(3, "this is not json")  # line 4
        lines.insert(7, json.dumps(record(1, 0, "high", "all")))  # line 8: p_all not a number
        lines.insert(9, json.dumps([1, 2, 3]))  # line 10: not an object
    text = "\n".join(lines) + "\n"
    if bad:
        text += json.dumps(record(3, 0, 0.99, "all"))[:40]  # cut-off last line (line 15)
    path.write_text(text)


def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), Table I, method 3 (Wilson score without continuity correction)
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    lo, hi = wilson_interval(15, 148)
    assert (round(lo, 4), round(hi, 4)) == (0.0624, 0.1605)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and round(hi, 4) == 0.1611
    lo, hi = wilson_interval(1, 29)
    assert (round(lo, 4), round(hi, 4)) == (0.0061, 0.1718)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 10)[1] == pytest.approx(Z95**2 / (10 + Z95**2))
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_known_results_give_hand_computed_counts_and_intervals(tmp_path) -> None:
    write_known(tmp_path / "cells.jsonl")
    rep = build_report(tmp_path / "cells.jsonl", min_cells=9)
    s = rep.summary
    assert (s["frames"], s["empty_frames"], s["cells"], s["all"], s["other"]) == (3, 1, 9, 4, 5)
    assert (s["indeterminate"], s["determinate_cells"], s["determinate_all"], s["unclassified"]) == (2, 7, 3, 1)
    assert s["all_fraction"] == pytest.approx(4 / 9, abs=1e-6)
    # by hand: p = 4/9, z² = 3.841459; centre = (p + z²/18) / (1 + z²/9) = 0.461066,
    # half-width = z·sqrt(p(1-p)/9 + z²/324) / (1 + z²/9) = 0.272285
    assert s["all_ci95"] == pytest.approx([0.18878, 0.73335], abs=2e-5)
    # outside the band: 3 of 7 → centre 0.453878, half-width 0.295661
    assert s["determinate_all_ci95"] == pytest.approx([0.15822, 0.74954], abs=2e-5)
    assert s["adequate"] is True and s["verdict"].startswith("adequate: 9")
    assert [(f.frame, f.cells, f.all, f.indeterminate, f.unclassified) for f in rep.fields] == [
        (0, 4, 2, 2, 0),
        (1, 0, 0, 0, 0),
        (2, 5, 2, 0, 1),
    ]
    # histogram bins of width 0.05: 0.95→19, 0.10→2, 0.45→9, 0.55→11, 0.70→14, 0.20→4, 0.30→6, 0.05→1, 0.60→12
    hist = {i: ab for i, ab in enumerate(rep.histogram) if ab != (0, 0)}
    assert hist == {
        19: (1, 0),
        2: (0, 1),
        9: (0, 1),
        11: (1, 0),
        14: (1, 0),
        4: (0, 1),
        6: (0, 1),
        1: (0, 1),
        12: (1, 0),
    }
    assert rep.flagged_total == 5  # 4 ALL + the indeterminate 0.45


def test_malformed_lines_are_listed_by_number_and_the_rest_counted(tmp_path) -> None:
    write_known(tmp_path / "cells.jsonl")
    rep = build_report(tmp_path / "cells.jsonl")
    bad = rep.results.problems.bad_lines
    assert [n for n, _ in bad] == [4, 8, 10, 15]
    assert "not JSON" in bad[0][1]
    assert "'p_all' is 'high'" in bad[1][1]
    assert "expected a JSON object" in bad[2][1]
    assert "cut off" in bad[3][1]
    assert rep.summary["cells"] == 9
    write_report(tmp_path / "cells.jsonl", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    for n in (4, 8, 10, 15):
        assert f"<li>line {n}:" in html


def test_inadequate_slide_and_default_min_cells(tmp_path) -> None:
    write_known(tmp_path / "cells.jsonl", bad=False)
    s = build_report(tmp_path / "cells.jsonl").summary
    assert s["min_cells"] == 200 and s["adequate"] is False
    assert "inadequate: 9 classified cells, fewer than the 200 needed" in s["verdict"]


def test_band_comes_from_the_bundle_manifest(tmp_path) -> None:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"not really a model, but hashed all the same")
    m = replace(Manifest(), decision=Decision(threshold=0.5, policy="fixed", indeterminate=(0.25, 0.75)))
    bundle = write_bundle(root, m, {"onnx_fp32": "model.onnx"})
    write_known(tmp_path / "cells.jsonl", bad=False, model=bundle.short_hash)
    rep = build_report(tmp_path / "cells.jsonl", model=str(root))
    # [0.25, 0.75): 0.45, 0.55, 0.70, 0.30, 0.60 → 5 indeterminate, 3 of them ALL
    assert rep.summary["indeterminate"] == 5 and rep.summary["determinate_all"] == 1
    assert rep.notes == [OLD_FILE_NOTE]  # a file without cell_id: counts may repeat cells
    write_report(tmp_path / "cells.jsonl", tmp_path / "r.html", model=str(root))
    html = (tmp_path / "r.html").read_text()
    assert bundle.model_hash in html and "[0.25, 0.75)" in html
    write_known(tmp_path / "other.jsonl", bad=False, model="ffffffffffff")
    other = build_report(tmp_path / "other.jsonl", model=str(root)).notes
    assert any("is not the model named in the results" in n for n in other)


def test_a_cv_band_prints_as_three_digits_not_float_noise(tmp_path) -> None:
    # decision_from_cv writes threshold ± 0.1 unrounded, e.g. 0.27574157118797304
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"hashed")
    band = (0.375741571187973 - 0.1, 0.375741571187973 + 0.1)
    m = replace(Manifest(), decision=Decision(threshold=0.3757, policy="cv", indeterminate=band))
    write_bundle(root, m, {"onnx_fp32": "model.onnx"})
    write_known(tmp_path / "cells.jsonl", bad=False, model="")
    write_report(tmp_path / "cells.jsonl", tmp_path / "r.html", model=str(root))
    html = (tmp_path / "r.html").read_text()
    assert "indeterminate (p_ALL in [0.276, 0.476))" in html  # the audit trail keeps the exact values
    result = CliRunner().invoke(main, ["report", str(tmp_path / "cells.jsonl"), "--model", str(root)])
    assert result.exit_code == 0, result.output
    assert "p_ALL in [0.276, 0.476);" in result.output and "0.2757415" not in result.output


def test_report_is_one_self_contained_file_with_the_gallery(tmp_path) -> None:
    import cv2

    slide = tmp_path / "slide"
    crops = slide / "cells-crops"
    crops.mkdir(parents=True)
    pool = crop_pool(2)
    recs = []
    for k in KNOWN:
        extra = {}
        if k[2] is not None and (k[3] == "all" or 0.4 <= k[2] < 0.6):
            name = f"f{k[0]:06d}_c{k[1]:03d}.png"
            cv2.imwrite(str(crops / name), pool[0])
            extra["crop"] = f"cells-crops/{name}"
        recs.append(record(*k, **extra))
    cv2.imwrite(str(tmp_path / "private.png"), pool[1])  # a real image, outside the results folder
    recs[2]["crop"] = "../private.png"  # a results file must not pull other files into the report
    (slide / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (crops / "f000002_c000.png").unlink()  # one crop went missing
    rep = write_report(slide / "cells.jsonl", tmp_path / "out" / "r.html", gallery=2)
    html = (tmp_path / "out" / "r.html").read_text()
    shown = re.findall(r"<figure class='(\w+)' data-frame='(\d+)' data-cell='(\d+)'>", html)
    # indeterminate first: 0.55 (0.45's crop path leads out of the folder and is refused);
    # then ALL by p: 0.95, 0.60 (0.70's crop file is gone)
    assert shown == [("ind", "0", "3"), ("all", "0", "0"), ("all", "2", "4")]
    assert rep.crops_saved == 5 and rep.crops_missing == 2
    assert html.count("src='data:image/png;base64,") == 3
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", html)  # nothing loaded from elsewhere
    assert "<script" not in html
    assert "<svg id='histogram'" in html


def test_csv_results_give_the_same_report(tmp_path) -> None:
    from leukedge.sinks.csvfile import CSV_COLUMNS, CsvWriter

    w = CsvWriter(tmp_path / "cells.csv", CSV_COLUMNS)
    w.write_many(record(*k) for k in KNOWN)
    w.close()
    write_known(tmp_path / "cells.jsonl", bad=False)
    assert build_report(tmp_path / "cells.csv").summary == build_report(tmp_path / "cells.jsonl").summary


def test_parquet_results_give_the_same_report(tmp_path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = []
    for k in KNOWN:
        r = record(*k)
        box = r.pop("bbox") or [None] * 4
        rows.append(dict(r, x=box[0], y=box[1], w=box[2], h=box[3]))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "cells.parquet")
    write_known(tmp_path / "cells.jsonl", bad=False)
    assert build_report(tmp_path / "cells.parquet").summary == build_report(tmp_path / "cells.jsonl").summary


def test_source_names_are_escaped(tmp_path) -> None:
    r = record(0, 0, 0.9, "all")
    r["source"] = "<script>alert(1)</script>.png"
    (tmp_path / "c.jsonl").write_text(json.dumps(r) + "\n")
    write_report(tmp_path / "c.jsonl", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "no such results file"),
        ("cells.txt", "x", "unknown results format"),
        ("cells.parquet", "x", "not a readable Parquet file"),
        ("empty.jsonl", "", "holds no valid result record"),
        ("junk.jsonl", "junk\n{}\n", "holds no valid result record.*line 1"),
    ],
)
def test_unusable_results_files_are_clear_errors(tmp_path, name, content, message) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        build_report(tmp_path / name)


def test_cli_report(tmp_path) -> None:
    write_known(tmp_path / "cells.jsonl")
    r = CliRunner().invoke(main, ["report", str(tmp_path / "cells.jsonl"), "--min-cells", "5"])
    assert r.exit_code == 0, r.output
    assert "4 of 9 cells ALL (44.4%, 95% CI 18.9%–73.3%)" in r.output
    assert "adequate: 9 classified cells" in r.output
    assert "skipped 4 malformed line(s): line 4" in r.output
    assert (tmp_path / "cells-report.html").is_file()
    r = CliRunner().invoke(main, ["report", str(tmp_path / "cells.jsonl"), "--out", str(tmp_path / "x.html"), "--json"])
    assert r.exit_code == 0
    body = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    assert body["cells"] == 9 and body["all"] == 4
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 3 and "Error:" in r.output and "Hint:" in r.output
