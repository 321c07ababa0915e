"""The network (rotation invariance) and the training pipeline on a small simulated set: it learns,
and the same seed reproduces the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lenga.stamps import CLASSES
from lenga.stamps.dataset import build_stamp_set
from lenga.stamps.inference import StampClassifier, long_rows
from lenga.stamps.model import StampCNN
from lenga.stamps.train import TrainSettings, evaluate, plot_confusion, save_model, train

SMALL = TrainSettings(seed=3, max_epochs=6, batch_size=64, patience=3, threads=1)


def test_output_is_invariant_to_quarter_turns():
    torch.manual_seed(0)
    model = StampCNN(n_features=4).eval()
    images, features = torch.randn(8, 3, 21, 21), torch.randn(8, 4)
    with torch.no_grad():
        reference = model(images, features)
        for k in (1, 2, 3):
            torch.testing.assert_close(model(torch.rot90(images, k, dims=(2, 3)), features), reference,
                                       rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(torch.flip(images, dims=(3,)), features), reference)  # not a constant


@pytest.fixture(scope="module")
def small_sets():
    return build_stamp_set("ztf", 40, seed=21), build_stamp_set("ztf", 12, seed=22), \
        build_stamp_set("ztf", 20, seed=23, augment=False)


def test_training_learns_and_reproduces_with_the_seed(small_sets, tmp_path):
    train_set, validation, test_set = small_sets
    first = train(train_set, validation, SMALL)
    second = train(train_set, validation, SMALL)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert 1 <= first.best_epoch <= first.epochs <= SMALL.max_epochs
    report = evaluate(first.model, test_set)
    assert report["balanced_accuracy"] > 0.5  # chance is 0.2; 40 examples per class, seconds of CPU
    assert set(report["per_class"]) == set(CLASSES)
    assert np.array(report["confusion_matrix"]["counts"]).sum() == len(test_set)
    other_seed = train(train_set, validation, TrainSettings(**{**SMALL.__dict__, "seed": 4}))
    assert not torch.equal(other_seed.model.state_dict()["head.3.weight"], first.model.state_dict()["head.3.weight"])
    # Saved and reloaded, the classifier predicts what the trained network predicts.
    save_model(first.model, tmp_path, "ztf", "test", list(map(str, range(test_set.features.shape[1]))))
    plot_confusion(report, tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="retrain"):  # feature names of another code version
        StampClassifier.load(tmp_path)


def test_long_rows_rank_the_classes():
    import pyarrow as pa

    batch = pa.table({"survey": ["ztf", "ztf"], "objectId": ["a", "b"], "candid": [1, 2], "night": [20250501] * 2,
                      "mjd": [60796.1, 60796.2], "ingest_batch_id": [7, 7]})
    probabilities = np.array([[0.1, 0.6, 0.1, 0.15, 0.05], [0.05, 0.05, 0.05, 0.05, 0.8]], np.float32)
    rows = long_rows(batch, probabilities, "stamp_classifier", "1.0").to_pylist()
    assert len(rows) == 10 and [r["class_name"] for r in rows[:5]] == list(CLASSES)
    assert [r["ranking"] for r in rows[:5]] == [3, 1, 4, 2, 5]
    assert rows[9] == {"survey": "ztf", "objectId": "b", "candid": 2, "night": 20250501, "mjd": 60796.2,
                       "classifier": "stamp_classifier", "classifier_version": "1.0", "class_name": "bogus",
                       "probability": pytest.approx(0.8), "ranking": 1, "ingest_batch_id": 7}


def test_inference_applies_the_calibration_temperature(tmp_path):
    from lenga.stamps.features import feature_names

    torch.manual_seed(0)
    names = feature_names("ztf")
    model = StampCNN(len(names)).eval()
    save_model(model, tmp_path, "ztf", "t", names, extra={"temperature": 2.5})
    classifier = StampClassifier.load(tmp_path)
    assert classifier.temperature == 2.5
    images, features = torch.randn(3, 3, 21, 21), torch.randn(3, len(names))
    with torch.no_grad():
        expected = torch.softmax(model(images, features) / 2.5, dim=1).numpy()
    np.testing.assert_allclose(classifier.probabilities(images.numpy(), features.numpy()), expected, rtol=1e-5)
    save_model(model, tmp_path, "ztf", "t", names)  # no temperature: uncalibrated softmax
    assert StampClassifier.load(tmp_path).temperature == 1.0
