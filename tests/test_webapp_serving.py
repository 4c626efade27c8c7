"""webapp.serving: which models the app serves, named as visitors see them."""

import json

import pytest

from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.hub.reference import display_name
from webapp import serving
from webapp.serving import ensemble_of

SHIP = REPO_ROOT / "examples" / "test0001_ship.png"
FLAGSHIP = REPO_ROOT / "models" / "resnet_fast"
ENSEMBLE_MEMBERS = json.loads((REPO_ROOT / "models/ensemble/config.json").read_text())["members"]


def test_default_sources_are_the_shipped_models_flagship_first(monkeypatch):
    monkeypatch.delenv(serving.MODELS_ENV, raising=False)
    sources = serving.model_sources()
    assert sources[0] == str(FLAGSHIP)
    monkeypatch.setenv(serving.MODELS_ENV, "a/b@v2, models/x")
    assert serving.model_sources() == ["a/b@v2", "models/x"]
    assert serving.model_sources("c/d") == ["c/d"]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("tester/cifar-resnet", "tester/cifar-resnet"),
        ("tester/cifar-resnet@v2", "tester/cifar-resnet@v2"),
        ("/srv/models/resnet_fast", "resnet_fast"),
        ("./resnet_fast", "resnet_fast"),
        ("runs/v4/model", "model"),
        (str(FLAGSHIP), "resnet_fast"),
    ],
)
def test_sources_are_shown_by_repo_id_or_folder_name_never_by_server_path(source, name):
    assert display_name(source) == name


def test_a_model_that_fails_to_load_is_reported_and_the_rest_serve(served):
    assert served.names == ["resnet_fast", "model"]
    failure = served.failures["missing_model"]  # named as visitors see it, not by its path
    assert failure.source == "/srv/private/missing_model"
    assert failure.error_type in failure.reason
    with pytest.raises(ValueError, match="unknown model 'vgg'; loaded: resnet_fast, model"):
        served.get("vgg")


def test_the_shipped_ensemble_votes_when_all_its_members_are_served(flagship, served):
    from cifar_cnn.classifier import CifarClassifier
    from cifar_cnn.trust.ood import detector_of

    members = {
        m["name"]: CifarClassifier.from_pretrained(REPO_ROOT / "models" / "ensemble" / m["source"])
        for m in ENSEMBLE_MEMBERS
        if m["name"] != "resnet_fast"
    }
    # Another served model (the test's one-epoch "model") does not join the shipped ensemble.
    ensemble = ensemble_of({"resnet_fast": flagship, **members, "model": served.get("model")})
    assert ensemble.names == [m["name"] for m in ENSEMBLE_MEMBERS]
    assert list(ensemble.weights) == [m["weight"] for m in ENSEMBLE_MEMBERS]
    assert detector_of(ensemble) is not None  # the ensemble folder's, not the members' votes
    coffee = ensemble.check(REPO_ROOT / "examples" / "outliers" / "photo_coffee.jpg")
    assert coffee.out_of_distribution and coffee.check.method == "knn"
    # Without all its members, every served model votes by validation accuracy, and a picture is
    # flagged by most members' checks.
    ad_hoc = ensemble_of({"resnet_fast": flagship, "model": served.get("model")})
    assert detector_of(ad_hoc) is None and ad_hoc.names == ["resnet_fast", "model"]
    assert ad_hoc.check(REPO_ROOT / "examples" / "outliers" / "photo_coffee.jpg").check.method == (
        "members"
    )
