"""The object plot (lenga.viz) and ``./spark-submit.sh plot``: what is drawn is what the lake holds.

Runs on the session's demo lake (tests/demo_lake.py). Classification tables are written into a
copy of it with deltalake, in the agreed session-2 schemas, with two classifier versions (1.9.0 and
1.10.0, which a text comparison would order wrongly) and two light curves per version, so the
"latest classification" rule is checked on real Delta tables.
"""

from __future__ import annotations

import gzip
import io
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from astropy.io import fits
from deltalake import write_deltalake
from demo_lake import core_only_copy, demo_lake
from matplotlib.container import ErrorbarContainer

from jobs import plot as plot_job
from lenga.viz.cutouts import CutoutError, display_limits, read_cutout
from lenga.viz.plots import DPI, NO_CLASSIFICATION, OBJECT_FIGSIZE, UPPER_LIMIT_MARKER, object_figure
from lenga.viz.read import LC_TABLE, STAMP_TABLE, latest_classification, load_object

ROOT = Path(__file__).resolve().parents[2]
STAMP_CLASSES = ["AGN", "SN", "VS", "asteroid", "bogus"]
TOP_CLASSES = ["Periodic", "Stochastic", "Transient"]
# The agreed session-2 table schemas (column order and types of the classifiers' writers).
STAMP_SCHEMA = pa.schema([("survey", pa.string()), ("objectId", pa.string()), ("candid", pa.int64()),
                          ("night", pa.int32()), ("mjd", pa.float64()), ("classifier", pa.string()),
                          ("classifier_version", pa.string()), ("class_name", pa.string()),
                          ("probability", pa.float32()), ("ranking", pa.int32()), ("ingest_batch_id", pa.int64())])
LC_SCHEMA = pa.schema([("survey", pa.string()), ("objectId", pa.string()), ("night", pa.int32()),
                       ("lastmjd", pa.float64()), ("ndet", pa.int64()), ("classifier", pa.string()),
                       ("classifier_version", pa.string()), ("level", pa.string()), ("class_name", pa.string()),
                       ("probability", pa.float64()), ("ranking", pa.int32()), ("batch_id", pa.int64())])


@pytest.fixture(scope="session")
def lake(spark, tmp_path_factory) -> Path:
    return demo_lake(tmp_path_factory)


@pytest.fixture(scope="session")
def object_id(lake) -> str:
    """A ZTF object with several alerts, upper limits and forced photometry."""
    alerts = pl.read_delta(str(lake / "alerts"), columns=["survey", "objectId"]).filter(pl.col("survey") == "ztf")
    limits = pl.read_delta(str(lake / "non_detections"), columns=["objectId", "kind"])
    counts = (alerts.group_by("objectId").len("alerts")
              .join(limits.filter(pl.col("kind") == "upper_limit").group_by("objectId").len("limits"), on="objectId")
              .join(limits.filter(pl.col("kind") == "forced").group_by("objectId").len("forced"), on="objectId")
              .filter(pl.col("alerts") >= 2).sort("alerts", "objectId", descending=True))
    assert not counts.is_empty(), "the demo lake has no ZTF object with 2 alerts, upper limits and forced points"
    return counts["objectId"][0]


def _probabilities(values: list[float]) -> list[float]:
    return list(np.asarray(values) / np.sum(values))


@pytest.fixture(scope="session")
def classified_lake(lake, object_id, tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the demo lake with stamp and light-curve classifications of ``object_id``."""
    root = core_only_copy(lake, tmp_path_factory.mktemp("classified") / "lake")
    alerts = pl.read_delta(str(lake / "alerts"), columns=["objectId", "candid", "mjd", "night"]).filter(
        pl.col("objectId") == object_id).sort("mjd")
    first, latest = alerts.row(0, named=True), alerts.row(-1, named=True)
    expected = {  # (alert, version) for the stamp classifier; (level, version, curve) for the light curve
        ("latest", "1.10.0"): _probabilities([1, 6, 1, 1, 1]),
        ("latest", "1.9.0"): _probabilities([5, 1, 2, 1, 1]),
        ("first", "1.10.0"): _probabilities([1, 1, 1, 1, 6]),
        ("top", "1.10.0", "new"): [0.1, 0.2, 0.7], ("top", "1.10.0", "old"): [0.6, 0.3, 0.1],
        ("top", "1.9.0", "new"): [0.3, 0.3, 0.4],
        ("leaf", "1.10.0", "new"): [0.8, 0.15, 0.05], ("leaf", "1.10.0", "old"): [0.2, 0.5, 0.3],
    }
    stamp = []
    for which, alert, version in (("latest", latest, "1.10.0"), ("latest", latest, "1.9.0"), ("first", first, "1.10.0")):
        probabilities = expected[(which, version)]
        order = np.argsort(probabilities)[::-1]
        for rank, i in enumerate(order, start=1):
            stamp.append({"survey": "ztf", "objectId": object_id, "candid": alert["candid"], "night": alert["night"],
                          "mjd": alert["mjd"], "classifier": "stamp_classifier", "classifier_version": version,
                          "class_name": STAMP_CLASSES[i], "probability": probabilities[i], "ranking": rank,
                          "ingest_batch_id": 0})
    lc = []
    leaf_classes = ["SNIa", "SNII", "SLSN"]
    for key, probabilities in expected.items():
        if len(key) != 3:
            continue
        level, version, curve = key
        names = TOP_CLASSES if level == "top" else leaf_classes
        lastmjd = latest["mjd"] if curve == "new" else first["mjd"]
        for rank, i in enumerate(np.argsort(probabilities)[::-1], start=1):
            lc.append({"survey": "ztf", "objectId": object_id, "night": latest["night"], "lastmjd": lastmjd,
                       "ndet": 5, "classifier": "lc_classifier", "classifier_version": version, "level": level,
                       "class_name": names[i], "probability": probabilities[i], "ranking": rank,
                       "batch_id": 1 if curve == "new" else 0})
    write_deltalake(str(root / STAMP_TABLE), pa.Table.from_pylist(stamp, STAMP_SCHEMA), partition_by=["night"])
    write_deltalake(str(root / LC_TABLE), pa.Table.from_pylist(lc, LC_SCHEMA), partition_by=["night"])
    return root, {"expected": expected, "first": first, "latest": latest, "leaf_classes": leaf_classes}


def _bars(ax) -> dict[str, float]:
    labels = [t.get_text() for t in ax.get_yticklabels()]
    return {label: patch.get_width() for label, patch in zip(labels, ax.patches, strict=True)}


def test_light_curve_panels_draw_every_point_of_the_lake(lake, object_id):
    this = pl.col("objectId") == object_id
    detections = pl.read_delta(str(lake / "detections")).filter(this)
    limits = pl.read_delta(str(lake / "non_detections")).filter(this)
    fig = object_figure(load_object(lake, object_id))
    mag, flux = fig.axes[0], fig.axes[1]

    def drawn(ax, suffix):
        return sorted(x for c in ax.containers if isinstance(c, ErrorbarContainer) and c.get_label().endswith(suffix)
                      for x in c.lines[0].get_xdata())

    assert drawn(mag, "detections") == sorted(detections["mjd"].to_list())
    assert drawn(flux, "detections") == sorted(detections["mjd"].to_list())
    assert drawn(flux, "forced") == sorted(limits.filter(pl.col("kind") == "forced")["mjd"].to_list())
    triangles = [line for line in mag.get_lines() if line.get_marker() == UPPER_LIMIT_MARKER]
    upper = limits.filter(pl.col("kind") == "upper_limit")
    assert sorted(y for line in triangles for y in line.get_ydata()) == sorted(upper["diffmaglim"].to_list())
    assert mag.yaxis_inverted()


def test_cutouts_are_the_latest_alerts_stamps(lake, object_id):
    alerts = pl.read_delta(str(lake / "alerts")).filter(pl.col("objectId") == object_id).sort("mjd")
    fig = object_figure(load_object(lake, object_id, alert="latest"))
    for ax, column in zip(fig.axes[2:5], ("cutoutScience", "cutoutTemplate", "cutoutDifference"), strict=True):
        with fits.open(io.BytesIO(gzip.decompress(alerts[column][-1]))) as hdus:
            np.testing.assert_array_equal(np.ma.getdata(ax.images[0].get_array()), hdus[0].data)
    first = object_figure(load_object(lake, object_id, alert="first"))
    with fits.open(io.BytesIO(gzip.decompress(alerts["cutoutScience"][0]))) as hdus:
        np.testing.assert_array_equal(np.ma.getdata(first.axes[2].images[0].get_array()), hdus[0].data)


def test_without_classification_tables_the_panels_say_so(lake, object_id):
    view = load_object(lake, object_id)
    assert view.stamp is None and view.light_curve is None
    fig = object_figure(view)
    for ax in fig.axes[5:8]:
        assert [t.get_text() for t in ax.texts] == [NO_CLASSIFICATION]


def test_probabilities_are_the_latest_version_and_curve(classified_lake, object_id):
    root, truth = classified_lake
    expected = truth["expected"]
    view = load_object(root, object_id, alert="latest")
    fig = object_figure(view)
    stamp, top, leaf = fig.axes[5:8]
    assert _bars(stamp) == pytest.approx(dict(zip(STAMP_CLASSES, expected[("latest", "1.10.0")], strict=True)))
    assert "1.10.0" in stamp.get_title()
    assert _bars(top) == pytest.approx(dict(zip(TOP_CLASSES, expected[("top", "1.10.0", "new")], strict=True)))
    assert _bars(leaf) == pytest.approx(dict(zip(truth["leaf_classes"], expected[("leaf", "1.10.0", "new")],
                                                 strict=True)))
    # The first alert's cutouts come with that alert's stamp probabilities.
    first = load_object(root, object_id, alert="first")
    assert first.alert["candid"] == truth["first"]["candid"]
    assert dict(zip(first.stamp["class_name"], first.stamp["probability"], strict=True)) == pytest.approx(
        dict(zip(STAMP_CLASSES, expected[("first", "1.10.0")], strict=True)))


def test_latest_classification_orders_versions_numerically():
    rows = pl.DataFrame({
        "survey": ["ztf"] * 6, "objectId": ["a"] * 4 + ["b"] * 2, "classifier": ["lc"] * 6,
        "classifier_version": ["1.9.0", "1.10.0", "1.10.0", "1.10.0", "2.0.0", "10.0.0"],
        "lastmjd": [9.0, 5.0, 7.0, 7.0, 1.0, 0.5], "class_name": ["x", "x", "x", "y", "x", "x"],
        "ranking": [1, 1, 1, 2, 1, 1]})
    latest = latest_classification(rows, ("lastmjd",))
    assert latest.select("objectId", "classifier_version", "lastmjd", "class_name").rows() == [
        ("a", "1.10.0", 7.0, "x"), ("a", "1.10.0", 7.0, "y"), ("b", "10.0.0", 0.5, "x")]


def test_read_cutout_gzipped_and_plain_fits_with_nan_pixels():
    image = np.arange(63 * 63, dtype=np.float32).reshape(63, 63)
    image[10:12, 20:25] = np.nan
    buffer = io.BytesIO()
    fits.PrimaryHDU(image).writeto(buffer)
    for payload in (buffer.getvalue(), gzip.compress(buffer.getvalue())):
        np.testing.assert_array_equal(read_cutout(payload), image)
    low, high = display_limits(image)
    assert np.nanmin(image) <= low < high <= np.nanmax(image)
    assert display_limits(np.full((5, 5), np.nan)) is None
    with pytest.raises(CutoutError, match="no cutout"):
        read_cutout(None)
    with pytest.raises(CutoutError, match="not a FITS file"):
        read_cutout(b"SIMPLE  = nonsense")
    with pytest.raises(CutoutError, match="corrupt gzip"):
        read_cutout(gzip.compress(buffer.getvalue())[:100])


def test_read_cutout_of_real_ztf_and_lsst_alerts(shared_data):
    import fastavro

    with open(shared_data / "ztf" / "boom" / "3005140370015010009.avro", "rb") as handle:
        ztf = next(fastavro.reader(handle))
    with fits.open(io.BytesIO(gzip.decompress(ztf["cutoutScience"]["stampData"]))) as hdus:
        np.testing.assert_array_equal(read_cutout(ztf["cutoutScience"]["stampData"]), hdus[0].data)
    lsst_file = sorted((shared_data / "lsst" / "fink-broker-rubin-v9_0").glob("*.avro"))[0]
    with open(lsst_file, "rb") as handle:
        lsst = next(fastavro.reader(handle))
    with fits.open(io.BytesIO(lsst["cutoutDifference"])) as hdus:
        np.testing.assert_array_equal(read_cutout(lsst["cutoutDifference"]), hdus[0].data)


def test_plot_job_writes_the_png(classified_lake, object_id, tmp_path):
    root, _ = classified_lake
    target = tmp_path / "direct.png"
    assert plot_job.main([object_id, "--lake", str(root), "--png", str(target)]) == target
    height, width = matplotlib.image.imread(target).shape[:2]
    assert (width, height) == (round(OBJECT_FIGSIZE[0] * DPI), round(OBJECT_FIGSIZE[1] * DPI))

    through_script = tmp_path / "cli.png"
    result = subprocess.run([str(ROOT / "spark-submit.sh"), "plot", object_id, "--lake", str(root),
                             "--png", str(through_script), "--alert", "first"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert through_script.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(LookupError, match="no detection"):
        plot_job.main(["ZTF00nosuchobj", "--lake", str(root), "--png", str(tmp_path / "none.png")])
