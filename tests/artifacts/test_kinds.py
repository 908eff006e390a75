"""Artifact kinds: what each renders, what its record keeps, and from_dict dispatch."""

from __future__ import annotations

import base64
import json
import math
import os
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from mlflowlet.artifacts import (
    Artifact,
    ArtifactManager,
    ChartArtifact,
    DatasetArtifact,
    ModelArtifact,
    PlotArtifact,
    TableArtifact,
    artifact_from_dict,
)
from mlflowlet.artifacts._svg import nice_ticks
from mlflowlet.datastore import get_dataitem
from mlflowlet.errors import ArtifactError, MissingDependencyError

RECORD_KEYS = {
    "kind", "key", "uid", "uri", "target_path", "hash", "size", "format", "viewer", "labels",
    "tag", "producer", "project", "tree", "iteration", "updated", "extra",
    "mtime_ns", "etag", "owned", "link_iteration",
}  # fmt: skip


@pytest.fixture
def manager(tmp_path):
    return ArtifactManager(str(tmp_path / "art"))


def _chart():
    chart = ChartArtifact("curves", header=["epoch", "loss", "acc", "note"], title="Training")
    for i in range(1, 6):
        chart.add_row([i, 1 / i, 1 - 1 / (i + 1), f"n{i}"])
    return chart


# tables --------------------------------------------------------------------------------------
def test_table_from_rows_and_header_is_csv():
    table = TableArtifact("t", header=["a", "b"], rows=[[1, "x,y"], [2, "z"]])
    assert table.get_body() == b'a,b\n1,"x,y"\n2,z\n'
    assert (table.kind, table.suffix, table.viewer) == ("table", ".csv", "table")
    assert table.extra == {"header": ["a", "b"], "length": 2}


def test_table_tsv_and_body():
    assert TableArtifact("t", header=["a", "b"], rows=[[1, 2]], format="tsv").get_body() == (
        b"a\tb\n1\t2\n"
    )
    assert TableArtifact("t", body="a,b\n1,2\n").get_body() == b"a,b\n1,2\n"


def test_table_from_dataframe_has_no_index():
    pd = pytest.importorskip("pandas")
    table = TableArtifact("t", df=pd.DataFrame({"a": [1, 2]}, index=[10, 20]))
    assert table.get_body() == b"a\n1\n2\n"
    assert table.extra["header"] == ["a"]


def test_table_row_width_mismatch_is_refused():
    with pytest.raises(ArtifactError, match="row 1 has 1 cells, the header has 2"):
        TableArtifact("t", header=["a", "b"], rows=[[1, 2], [3]])


def test_table_unknown_format_is_refused():
    with pytest.raises(ArtifactError, match="'csv' or 'tsv'"):
        TableArtifact("t", rows=[[1]], format="xlsx")


# charts --------------------------------------------------------------------------------------
class _Resources(HTMLParser):
    """Collect every tag and every attribute that could load something."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "data", "action") and value:
                self.links.append(value)


def test_chart_html_has_no_external_resources():
    page = _chart().get_body().decode()
    parser = _Resources()
    parser.feed(page)
    assert "svg" in parser.tags
    assert not {"script", "link", "iframe", "img", "object", "embed"} & set(parser.tags)
    assert parser.links == []
    assert "http://" not in page and "https://" not in page
    assert "url(" not in page and "@import" not in page


def _svg(chart):
    page = chart.get_body().decode()
    return ET.fromstring(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])


def test_chart_svg_is_well_formed_with_a_line_and_legend_per_numeric_column():
    svg = _svg(_chart())
    texts = [t.text for t in svg.iter("text")]
    assert texts[0] == "Training"  # the title
    assert {"loss", "acc", "epoch"} <= set(texts)  # legend entries and x axis name
    assert "note" not in texts  # a text column is not drawn
    lines = [p for p in svg.iter("path") if p.get("stroke")]
    assert len(lines) == 2
    assert lines[0].get("d").count("L") == 4  # 5 points: one move, four line-tos


def test_chart_line_breaks_at_missing_values():
    chart = ChartArtifact("c", header=["x", "y"], data=[[1, 1], [2, None], [3, 3], [4, 4]])
    (path,) = [p for p in _svg(chart).iter("path")]
    assert path.get("d").count("M") == 2


def test_chart_bar_draws_one_rect_per_value():
    chart = ChartArtifact(
        "b", header=["model", "f1", "auc"], data=[["rf", 0.8, 0.9], ["lr", -0.2, 0.7]], chart="bar"
    )
    svg = _svg(chart)
    bars = [r for r in svg.iter("rect") if r.get("width") not in ("12", "720")]
    assert len(bars) == 4
    assert all(float(r.get("height")) > 0 for r in bars)
    assert {"rf", "lr"} <= {t.text for t in svg.iter("text")}


def test_chart_scatter_draws_one_dot_per_point():
    data = [[math.sin(i), math.cos(i)] for i in range(30)]
    svg = _svg(ChartArtifact("s", header=["x", "y"], data=data, chart="scatter"))
    assert len(list(svg.iter("circle"))) == 30


def test_chart_without_numeric_data_says_so():
    assert "no data" in ChartArtifact("c", header=["a"], data=[["x"]]).get_body().decode()


def test_chart_escapes_text():
    page = ChartArtifact("c", header=["x", "<b>"], data=[[1, 2]], title="a & <b>").get_body()
    assert b"<b>" not in page
    assert b"a &amp; &lt;b&gt;" in page


def test_chart_extra_keeps_header_and_rows_and_roundtrips():
    chart = _chart()
    record = chart.to_dict()
    assert record["kind"] == "chart" and record["format"] == "html"
    assert record["extra"]["header"] == ["epoch", "loss", "acc", "note"]
    assert len(record["extra"]["rows"]) == 5
    again = artifact_from_dict(json.loads(json.dumps(record)))
    assert isinstance(again, ChartArtifact)
    assert again.get_body() == chart.get_body()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"chart": "pie"}, "chart must be one of"), ({"x": "nope"}, "x='nope' is not a column")],
)
def test_chart_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ArtifactError, match=message):
        ChartArtifact("c", header=["a", "b"], **kwargs)


def test_chart_add_row_checks_width():
    with pytest.raises(ArtifactError, match="row has 1 cells"):
        ChartArtifact("c", header=["a", "b"]).add_row([1])


@pytest.mark.parametrize(("low", "high"), [(0, 1), (-3.2, 7.9), (5, 5), (0.001, 0.0042), (-10, -2)])
def test_nice_ticks_cover_the_range(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 2 <= len(ticks) <= 12
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1


# plots ---------------------------------------------------------------------------------------
def test_plot_embeds_png_base64(manager):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([1, 2, 3], [3, 1, 2])
    art = manager.log(PlotArtifact("plot", fig, title="Loss"))
    page = open(art.uri).read()
    assert art.uri.endswith("plot.html") and art.kind == "plot"
    payload = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(payload).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<title>Loss</title>" in page


def test_plot_refuses_non_figures():
    with pytest.raises(ArtifactError, match="matplotlib Figure"):
        PlotArtifact("p", figure=object())


# datasets --------------------------------------------------------------------------------------
def _frame():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(
        {
            "id": range(30),
            "score": [i * i / 10 for i in range(30)],
            "name": [f"n{i}" for i in range(30)],
        }
    )


def test_dataset_parquet_roundtrip_with_schema(manager):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = _frame()
    art = manager.log(DatasetArtifact("train", df, preview=5))
    assert art.uri.endswith("train.parquet")
    assert open(art.uri, "rb").read(4) == b"PAR1"
    pd.testing.assert_frame_equal(get_dataitem(art.uri).as_df(), df)
    extra = art.to_dict()["extra"]
    assert extra["schema"] == {"id": "int64", "score": "float64", "name": str(df["name"].dtype)}
    assert extra["length"] == 30
    assert extra["preview"]["header"] == ["id", "score", "name"]
    assert extra["preview"]["rows"][:2] == [[0, 0.0, "n0"], [1, 0.1, "n1"]]
    assert len(extra["preview"]["rows"]) == 5
    stats = extra["stats"]
    assert set(stats) == {"id", "score"}
    assert stats["id"]["count"] == 30 and stats["id"]["min"] == 0 and stats["id"]["max"] == 29
    assert stats["score"]["mean"] == pytest.approx(8555 / 300)  # skewed: mean != median
    assert stats["score"]["std"] == pytest.approx(df["score"].std())


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_dataset_csv_and_json_roundtrip(manager, fmt):
    pd = pytest.importorskip("pandas")
    df = _frame()
    art = manager.log(DatasetArtifact("d", df, format=fmt, stats=False))
    assert art.uri.endswith(f"d.{fmt}") and art.format == fmt
    assert "stats" not in art.extra
    pd.testing.assert_frame_equal(get_dataitem(art.uri).as_df(), df)


def test_dataset_without_pyarrow_names_the_extra(monkeypatch):
    df = _frame()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'mlflowlet\[pandas\]'"):
        DatasetArtifact("d", df).get_body()


def test_dataset_record_is_json_safe_with_nan_and_dates():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": [1.0, float("nan")], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    record = DatasetArtifact("d", df).to_dict()
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text)["extra"]["preview"]["rows"][1][0] is None


def test_dataset_refuses_unknown_format_and_non_frames():
    with pytest.raises(ArtifactError, match="format must be one of"):
        DatasetArtifact("d", None, format="xlsx")
    with pytest.raises(ArtifactError, match="must be a pandas DataFrame"):
        DatasetArtifact("d", [[1, 2]])


# models ------------------------------------------------------------------------------------------
def test_model_from_file_records_metrics_and_framework(manager, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pkl").write_bytes(b"weights")
    model = ModelArtifact(
        "clf", model_file="model.pkl", model_dir=str(tmp_path / "m"),
        metrics={"acc": 0.93}, parameters={"depth": 4}, framework="sklearn",
    )  # fmt: skip
    art = manager.log(model)
    assert art.uri.endswith("model.pkl") and open(art.uri, "rb").read() == b"weights"
    assert art.to_dict()["extra"] == {
        "metrics": {"acc": 0.93}, "parameters": {"depth": 4},
        "framework": "sklearn", "model_file": "model.pkl",
    }  # fmt: skip
    assert artifact_from_dict(art.to_dict()).metrics == {"acc": 0.93}


def test_model_from_body(manager):
    art = manager.log(ModelArtifact("m", body=b"\x01\x02", format="bin"))
    assert art.uri.endswith("m.bin") and art.size == 2 and art.kind == "model"


# records and dispatch ---------------------------------------------------------------------
def test_web_page_is_a_plain_artifact(manager):
    art = manager.log(
        Artifact("report", body="<html><p>hi</p></html>", viewer="web-app", format="html")
    )
    assert art.uri.endswith("report.html")
    assert (art.kind, art.viewer) == ("artifact", "web-app")


def test_to_dict_is_flat_json_safe_and_has_no_body(manager):
    np = pytest.importorskip("numpy")
    art = manager.log(
        ModelArtifact("m", body=b"secret-bytes", metrics={"acc": np.float32(0.5), "n": np.int64(3)})
    )
    record = art.to_dict()
    assert set(record) == RECORD_KEYS
    text = json.dumps(record, allow_nan=False)
    assert "secret-bytes" not in text
    assert record["extra"]["metrics"] == {"acc": 0.5, "n": 3}


@pytest.mark.parametrize(
    ("artifact", "cls"),
    [
        (lambda: Artifact("a", body=b"x"), Artifact),
        (lambda: TableArtifact("t", rows=[[1]]), TableArtifact),
        (_chart, ChartArtifact),
        (lambda: ModelArtifact("m", body=b"x"), ModelArtifact),
        (lambda: PlotArtifact("p"), PlotArtifact),
        (lambda: DatasetArtifact("d"), DatasetArtifact),
    ],
)
def test_from_dict_dispatches_on_kind(manager, artifact, cls):
    art = artifact()
    record = art.to_dict()
    again = artifact_from_dict(record)
    assert type(again) is cls
    assert again.to_dict() == record


def test_from_dict_keeps_unknown_kinds():
    again = Artifact.from_dict({"key": "k", "kind": "vendor-thing", "uri": "/x"})
    assert type(again) is Artifact and again.kind == "vendor-thing" and again.uri == "/x"


def test_from_dict_needs_a_key():
    with pytest.raises(ArtifactError, match="needs a 'key'"):
        artifact_from_dict({"kind": "table"})


def test_model_body_with_model_file_stores_the_body_under_that_name(manager):
    model = ModelArtifact("clf", body=b"pickled", model_file="model.pkl", framework="sklearn")
    art = manager.log(model)
    assert os.path.basename(art.uri) == "model.pkl" and open(art.uri, "rb").read() == b"pickled"
    assert art.to_dict()["extra"]["model_file"] == "model.pkl"


def test_table_body_of_rows_is_written_as_csv_with_the_header(manager):
    art = manager.log(TableArtifact("t", body=[[1, 2], [3, 4]], header=["x", "y"]))
    assert open(art.uri).read() == "x,y\n1,2\n3,4\n" and art.extra["length"] == 2
