"""Metadata features (lenga.stamps.features): the training (direct) path equals the stream's
(Avro packet decoded by lenga.decode), values are bounded and sentinels filled."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lenga import schema
from lenga.decode import decode_record_batch
from lenga.sim.classes import LIGHT_CURVE_CLASSES
from lenga.sim.lightcurves import STAMP_CLASSES
from lenga.sim.night import SimConfig, build_population, simulate
from lenga.stamps import CLASSES
from lenga.stamps.dataset import alert_rows
from lenga.stamps.features import CONTRAST_FEATURES, FEATURES, feature_names, metadata_features, model_inputs

# One light-curve model of every stamp class, the bogus artefacts included.
MIX = {next(name for name, m in sorted(LIGHT_CURVE_CLASSES.items()) if m.stamp_class == c): 1.0
       for c in STAMP_CLASSES} | {"bogus": 1.0}
SIM = SimConfig(seed=3, n_objects=40, n_nights=3, class_mix=MIX)


def test_classes_are_the_simulator_stamp_classes():
    assert CLASSES == STAMP_CLASSES


@pytest.mark.parametrize("survey", ["ztf", "lsst"])
def test_direct_path_equals_decoded_alerts(survey):
    config = SimConfig(**{**SIM.__dict__, "surveys": (survey,)})
    alerts = list(simulate(config))
    assert len(alerts) > 20
    decoded = pa.Table.from_batches([decode_record_batch(pa.record_batch({"value": [a.value for a in alerts]}))])
    assert decoded["quarantine_reason"].null_count == len(alerts)
    objects = {o.cache["objectId"]: o for o in build_population(config, survey)}
    window = (config.start_mjd, config.start_mjd + config.n_nights)
    triggers = [(o, int(i)) for o in objects.values()
                for i in np.flatnonzero(o.detected & (o.epochs.mjd >= window[0]) & (o.epochs.mjd < window[1]))]
    direct = alert_rows(survey, [o for o, _ in triggers], [i for _, i in triggers])
    by_candid = {c: k for k, c in enumerate(decoded["candid"].to_pylist())}
    order = pa.array([by_candid[c] for c in direct["candid"].to_pylist()])
    streamed = decoded.take(order)
    direct_inputs, streamed_inputs = model_inputs(direct, survey), model_inputs(streamed, survey)
    # Equal up to float32 precision: ZTF packets store most candidate fields as Avro ``float``.
    np.testing.assert_allclose(direct_inputs.features, streamed_inputs.features, rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(direct_inputs.images, streamed_inputs.images)
    assert direct_inputs.features.shape[1] == len(feature_names(survey)) == len(FEATURES[survey]) + 2
    assert np.isfinite(direct_inputs.features).all() and direct_inputs.reasons == [None] * direct.num_rows
    assert {o.class_name for o, _ in triggers} >= {"bogus"}


def test_features_are_bounded_and_sentinels_filled():
    rows = [
        {"ra": 10.0, "dec": 5.0, "isdiffpos": True, "magpsf": 18.0, "sigmapsf": 0.05, "diffmaglim": 20.5,
         "fwhm": 2.1, "elong": 1.1, "classtar": 0.9, "nbad": 0, "srmag1": 17.0, "sgscore1": 0.98, "distpsnr1": 0.2,
         "chinr": 1.0, "sharpnr": 0.01, "ndethist": 3, "ncovhist": 40},
        {"ra": 10.0, "dec": 5.0, "isdiffpos": False, "magpsf": 30.0, "sigmapsf": None, "diffmaglim": None,
         "fwhm": None, "elong": 50.0, "classtar": None, "nbad": None, "srmag1": -999.0, "sgscore1": -999.0,
         "distpsnr1": -999.0, "chinr": None, "sharpnr": None, "ndethist": None, "ncovhist": 10**6},
    ]
    table = pa.Table.from_pylist(rows, schema=pa.schema([schema.ALERTS.field(k) for k in rows[0]]))
    values = metadata_features(table, "ztf")
    names = [f.name for f in FEATURES["ztf"]]
    assert names + [f.name for f in CONTRAST_FEATURES] == feature_names("ztf")
    assert values.shape == (2, len(names)) and np.isfinite(values).all()
    for feature, column in zip(FEATURES["ztf"], values.T, strict=True):
        assert (column >= feature.lo).all() and (column <= feature.hi).all(), feature.name
    row = dict(zip(names, values[1], strict=True))
    assert row["sgscore1"] == 0.5 and row["distpsnr1"] == 30.0 and row["magpsf"] == 23.0 and row["elong"] == 6.0
    assert dict(zip(names, values[0], strict=True))["magpsf_minus_srmag1"] == pytest.approx(1.0)


def test_unknown_survey_or_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match="no stamp features for survey 'hsc'"):
        feature_names("hsc")
    with pytest.raises(KeyError, match="psfFlux"):
        metadata_features(pa.table({"ra": [1.0], "dec": [2.0]}), "lsst")
