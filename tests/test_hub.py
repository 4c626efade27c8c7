"""Publishing to and loading from the Hugging Face Hub: `training.push` (cifar-push) and
`from_pretrained`, with the real `huggingface_hub` client over HTTP against a local Hub test double
(tests/hub_server.py).

The client reads `HF_ENDPOINT` when `huggingface_hub` is imported, and this process has imported
it already (conftest imports the project), so every step that relies on the default endpoint (the
push functions, `from_pretrained`, the CLI) runs in a subprocess with `HF_ENDPOINT`, its own
`HF_HOME` and a test `HF_TOKEN`. Checks of what reached the Hub use `HfApi(endpoint=hub.url)`.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hub_server import HubTestServer
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from cifar_cnn.data.cifar10 import REPO_ROOT, SLICE_PATH

TOKEN = "hf_token_for_the_local_test_hub"
CLIENT_PRELUDE = """
import json, sys
import numpy as np
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import load_slice

P = json.loads(sys.argv[1])
IMAGES = load_slice().x_test[:20]

def report(**values):
    arrays = {k: v.tolist() for k, v in values.items() if isinstance(v, np.ndarray)}
    print(json.dumps({**values, **arrays}))
"""
PUSH_CLI = "from training.push import push_main; push_main()"


@pytest.fixture(scope="module")
def hub():
    with HubTestServer() as server:
        yield server
    assert not server.errors, server.errors


@pytest.fixture(scope="module")
def hub_api(hub) -> HfApi:
    return HfApi(endpoint=hub.url, token=TOKEN)


def run_client(hub: HubTestServer, home: Path, *args: str, offline: bool = False):
    """`python *args` as a Hub client of the test hub, with `home` as HF_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(home),
        HF_TOKEN=TOKEN,
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert not hub.errors, hub.errors
    return result


def client(hub: HubTestServer, home: Path, code: str, offline: bool = False, **params) -> dict:
    """Run `code` (after CLIENT_PRELUDE: P holds `params`) as a client; what it `report`ed."""
    script = CLIENT_PRELUDE + textwrap.dedent(code)
    params = {key: str(value) for key, value in params.items()}
    result = run_client(hub, home, "-c", script, json.dumps(params), offline=offline)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.splitlines()[-1])


def probabilities(values: list) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def training_record(seed: int) -> dict:
    """A training record in the form training/publish.py writes. These tests do not train (too
    slow): the models are untrained, and this record stands for the run that the commit message
    and the model card must name."""
    from cifar_cnn.models import get_recipe

    return {
        "recipe": get_recipe("seed_cnn", epochs=1, seed=seed).to_dict(),
        "command": f"cifar-train --model seed_cnn --epochs 1 --seed {seed}",
        "data_source": "data/cifar10_slice.npz",
        "train_n": 900,
        "val_n": 100,
        "epochs_run": 1,
        "best_epoch": 1,
        "best_val_accuracy": 0.1,
        "train_seconds": 1.0,
        "images_per_second": 900.0,
        "hardware": "test machine",
    }


def make_model_folder(folder: Path, seed: int, data) -> Path:
    """An untrained seed_cnn scaled down to 4.7k parameters, saved and evaluated like a trained
    one: config.json, model.weights.h5, metrics.json, README.md and a plot."""
    import keras

    from cifar_cnn.classifier import CifarClassifier
    from cifar_cnn.report.metrics import evaluate_classifier
    from cifar_cnn.report.plots import plot_reliability

    keras.utils.set_random_seed(seed)
    classifier = CifarClassifier.from_architecture("seed_cnn", filters=(4, 8, 8), dense_units=16)
    classifier.config["parameters"] = int(classifier.model.count_params())
    classifier.config["training"] = training_record(seed)
    classifier.metrics = evaluate_classifier(classifier, data.x_test, data.y_test)
    classifier.save_pretrained(folder)
    plot_reliability(classifier.metrics, folder / "reliability.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory, slice_data) -> dict[str, Path]:
    """Two different model folders, "old" and "new", and an ensemble of both by relative path."""
    from cifar_cnn.classifier import CifarClassifier
    from cifar_cnn.ensemble import CifarEnsemble
    from cifar_cnn.report.metrics import evaluate_ensemble

    root = tmp_path_factory.mktemp("folders")
    old = make_model_folder(root / "old", seed=1, data=slice_data)
    new = make_model_folder(root / "new", seed=2, data=slice_data)
    members = [CifarClassifier.load_folder(old), CifarClassifier.load_folder(new)]
    ensemble = CifarEnsemble(
        members, weights=[0.6, 0.4], names=["seed_a", "seed_b"], sources=["../old", "../new"]
    )
    ensemble.metrics = evaluate_ensemble(ensemble, slice_data.x_test, slice_data.y_test)
    ensemble.save_pretrained(root / "ensemble")
    return {"old": old, "new": new, "ensemble": root / "ensemble"}


@pytest.fixture(scope="module")
def seed_repo(hub, folders, tmp_path_factory) -> dict:
    """tester/cifar10-seed: the "old" folder pushed with push_model_folder, then downloaded once
    with from_pretrained (into `cache`) and, as a plain Keras user would, with hf_hub_download."""
    cache = tmp_path_factory.mktemp("seed-cache")
    code = """
        import keras
        from huggingface_hub import snapshot_download
        from training.push import push_model_folder

        pushed = push_model_folder(P["folder"], "tester/cifar10-seed")
        downloaded = CifarClassifier.from_pretrained("tester/cifar10-seed", cache_dir=P["cache"])
        # Plain Keras reads the same files, pinned to the tag through snapshot_download.
        path = snapshot_download("tester/cifar10-seed", revision=pushed["tag"])
        keras_only = keras.saving.load_model(path, compile=False, safe_mode=True)
        report(
            pushed=pushed,
            source=str(downloaded.source_dir),
            hub=downloaded.predict(IMAGES),
            keras_only=keras.ops.convert_to_numpy(keras_only(IMAGES, training=False)),
            local=CifarClassifier.load_folder(P["folder"]).predict(IMAGES),
        )
    """
    home = tmp_path_factory.mktemp("hf-home")
    return {**client(hub, home, code, folder=folders["old"], cache=cache), "cache": cache}


def test_the_test_hub_answers_as_the_hub_does(hub, hub_api):
    assert hub_api.whoami()["name"] == "tester"
    hub_api.create_repo("tester/private-model", private=True)
    url = hub_api.create_repo("tester/private-model", exist_ok=True)
    assert url.repo_id == "tester/private-model" and url.startswith(hub.url)
    with pytest.raises(HfHubHTTPError) as conflict:
        hub_api.create_repo("tester/private-model")
    assert conflict.value.response.status_code == 409
    assert hub_api.model_info("tester/private-model").private is True
    with pytest.raises(RepositoryNotFoundError):  # private: hidden from requests without a token
        HfApi(endpoint=hub.url, token=False).model_info("tester/private-model")


def test_a_pushed_model_downloads_and_predicts_exactly_like_its_folder(hub, hub_api, seed_repo):
    pushed = seed_repo["pushed"]
    assert pushed["tag"] == "v1"
    assert pushed["commit_url"] == f"{hub.url}/tester/cifar10-seed/commit/{pushed['commit_oid']}"
    local = probabilities(seed_repo["local"])
    np.testing.assert_array_equal(probabilities(seed_repo["hub"]), local)
    np.testing.assert_array_equal(probabilities(seed_repo["keras_only"]), local)
    # What was loaded is the pushed commit, and the whole folder went up in that one commit.
    assert Path(seed_repo["source"]).name == pushed["commit_oid"]
    assert hub.requests.count("POST /api/models/tester/cifar10-seed/commit/main") == 1
    files = {"config.json", "metadata.json", "model.weights.h5", "README.md", "metrics.json"}
    files |= {"reliability.png"}
    assert set(hub_api.list_repo_files("tester/cifar10-seed")) == files | {".gitattributes"}


def test_the_pushed_card_names_the_repo_and_the_commit_names_the_run(
    hub_api, seed_repo, folders, tmp_path
):
    card = ModelCard.load(
        hub_api.hf_hub_download(
            "tester/cifar10-seed", "README.md", revision="v1", cache_dir=tmp_path
        )
    )
    metadata = card.data.to_dict()
    assert metadata["library_name"] == "keras"
    assert metadata["pipeline_tag"] == "image-classification"
    assert metadata["datasets"] == ["uoft-cs/cifar10"]  # the Hub's CIFAR-10
    results = metadata["model-index"][0]["results"][0]
    assert results["dataset"]["type"] == "uoft-cs/cifar10"
    assert results["metrics"][0]["type"] == "accuracy"
    # The results' source: the pushed repo's own metrics.json.
    assert results["source"]["url"].endswith("/tester/cifar10-seed/blob/main/metrics.json")
    assert 'CifarClassifier.from_pretrained("tester/cifar10-seed")' in card.text
    # The card was re-rendered on a copy: the user's folder still has its own.
    assert "tester/cifar10-seed" not in (folders["old"] / "README.md").read_text()

    command = json.loads((folders["old"] / "config.json").read_text())["training"]["command"]
    latest = hub_api.list_repo_commits("tester/cifar10-seed")[0]
    assert latest.commit_id == seed_repo["pushed"]["commit_oid"]
    assert latest.title == f"Upload seed_cnn: {command}"


def test_a_retrained_model_gets_v2_and_v1_still_loads_the_old_one(hub, hub_api, folders, tmp_path):
    code = """
        from training.push import push_model_folder

        repo = "tester/cifar10-retrained"
        tags = [push_model_folder(P["old"], repo)["tag"], push_model_folder(P["new"], repo)["tag"]]
        try:
            push_model_folder(P["new"], repo, tag="v1")
            duplicate = None
        except ValueError as error:
            duplicate = str(error)
        report(
            tags=tags,
            duplicate=duplicate,
            old=CifarClassifier.load_folder(P["old"]).predict(IMAGES),
            new=CifarClassifier.load_folder(P["new"]).predict(IMAGES),
            pinned=CifarClassifier.from_pretrained(repo + "@v1").predict(IMAGES),
            revision=CifarClassifier.from_pretrained(repo, revision="v1").predict(IMAGES),
            latest=CifarClassifier.from_pretrained(repo).predict(IMAGES),
        )
    """
    out = client(hub, tmp_path, code, old=folders["old"], new=folders["new"])
    assert out["tags"] == ["v1", "v2"]
    old, new = probabilities(out["old"]), probabilities(out["new"])
    assert not np.array_equal(old, new)  # the retrained model really predicts differently
    np.testing.assert_array_equal(probabilities(out["pinned"]), old)
    np.testing.assert_array_equal(probabilities(out["revision"]), old)
    np.testing.assert_array_equal(probabilities(out["latest"]), new)
    assert "already has a tag 'v1'" in out["duplicate"]

    repo = "tester/cifar10-retrained"
    tags = {ref.name: ref.target_commit for ref in hub_api.list_repo_refs(repo).tags}
    assert set(tags) == {"v1", "v2"}
    history = [commit.commit_id for commit in hub_api.list_repo_commits(repo)]
    assert history[:2] == [tags["v2"], tags["v1"]]  # v2 is a new commit on top of v1


def test_offline_mode_loads_from_the_cache_and_fails_clearly_without_it(
    hub, seed_repo, folders, tmp_path
):
    code = """
        cached = CifarClassifier.from_pretrained("tester/cifar10-seed", cache_dir=P["cache"])
        try:
            CifarClassifier.from_pretrained("tester/cifar10-seed", cache_dir=P["empty"])
            error = None
        except Exception as exception:
            error = [type(exception).__name__, str(exception), repr(exception.__cause__)]
        local = CifarClassifier.load_folder(P["folder"])
        report(cached=cached.predict(IMAGES), local=local.predict(IMAGES), error=error)
    """
    requests_before = len(hub.requests)
    cache, empty = seed_repo["cache"], tmp_path / "empty"
    out = client(hub, tmp_path, code, offline=True, cache=cache, empty=empty, folder=folders["old"])
    assert len(hub.requests) == requests_before  # not one request left the machine
    np.testing.assert_array_equal(probabilities(out["cached"]), probabilities(out["local"]))
    kind, message, _ = out["error"]
    assert kind == "ValueError"
    assert message.startswith("tester/cifar10-seed@main: not in the local cache")
    assert "HF_HUB_OFFLINE is set" in message


def test_an_ensemble_is_pushed_with_pinned_members_and_loads_them_from_the_hub(
    hub, hub_api, folders, tmp_path
):
    code = """
        from cifar_cnn.ensemble import CifarEnsemble, load_pretrained
        from training.push import push_ensemble_folder, push_model_folder

        a = push_model_folder(P["old"], "tester/cifar10-member-a")
        b = push_model_folder(P["new"], "tester/cifar10-member-b")
        try:
            push_ensemble_folder(P["ensemble"], "tester/cifar10-ensemble", {})
            unpinned = None
        except ValueError as error:
            unpinned = str(error)
        members = {
            "seed_a": "tester/cifar10-member-a@" + a["tag"],
            "seed_b": "tester/cifar10-member-b@" + b["tag"],
        }
        pushed = push_ensemble_folder(P["ensemble"], "tester/cifar10-ensemble", members)
        from_hub = CifarEnsemble.from_pretrained("tester/cifar10-ensemble")
        # A member retrained later (its v2) stays out of the ensemble pinned to its v1, even
        # when the ensemble itself is loaded by revision.
        push_model_folder(P["new"], "tester/cifar10-member-a")
        by_revision = CifarEnsemble.from_pretrained("tester/cifar10-ensemble", revision="main")
        report(
            unpinned=unpinned,
            pushed=pushed,
            sources=from_hub.sources,
            member_folders=[str(member.source_dir) for member in from_hub.members],
            hub=from_hub.predict(IMAGES),
            by_revision=by_revision.predict(IMAGES),
            local=CifarEnsemble.from_pretrained(P["ensemble"]).predict(IMAGES),
            # One loader for either kind, told apart by the repo's config.json alone.
            loaded=[type(load_pretrained(r)).__name__
                    for r in ("tester/cifar10-ensemble", "tester/cifar10-member-a@v1")],
        )
    """
    out = client(hub, tmp_path, code, **folders)
    assert "seed_a (../old)" in out["unpinned"] and "--member" in out["unpinned"]
    assert out["pushed"]["tag"] == "v1"
    assert out["sources"] == ["tester/cifar10-member-a@v1", "tester/cifar10-member-b@v1"]
    assert out["loaded"] == ["CifarEnsemble", "CifarClassifier"]
    assert "models--tester--cifar10-member-a" in out["member_folders"][0]
    np.testing.assert_array_equal(probabilities(out["hub"]), probabilities(out["local"]))
    np.testing.assert_array_equal(probabilities(out["by_revision"]), probabilities(out["local"]))

    # A small repo: the config (members by reference), metrics and card, no weights.
    repo = "tester/cifar10-ensemble"
    files = {".gitattributes", "config.json", "metrics.json", "README.md"}
    assert set(hub_api.list_repo_files(repo)) == files
    card = Path(hub_api.hf_hub_download(repo, "README.md", cache_dir=tmp_path / "c")).read_text()
    assert 'CifarEnsemble.from_pretrained("tester/cifar10-ensemble")' in card
    assert "`tester/cifar10-member-b@v1`" in card


def test_the_cli_pushes_and_prints_the_tag(hub, hub_api, folders, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((REPO_ROOT / "README.md").read_text())  # the Space's own front matter
    options = ["--private", "--tag", "first", "--message", "Pushed from the CLI"]
    options += ["--space-readme", str(readme)]
    result = run_client(
        hub, tmp_path, "-c", PUSH_CLI, str(folders["new"]), "tester/cifar10-cli", *options
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"Committed {hub.url}/tester/cifar10-cli/commit/" in result.stdout
    assert "Tagged first" in result.stdout and "tester/cifar10-cli@first" in result.stdout
    assert [tag.name for tag in hub_api.list_repo_refs("tester/cifar10-cli").tags] == ["first"]
    assert hub_api.list_repo_commits("tester/cifar10-cli")[0].title == "Pushed from the CLI"
    assert hub_api.model_info("tester/cifar10-cli").private is True
    # The Space's README now lists the repo and preloads the files of the pushed commit.
    from huggingface_hub.repocard import metadata_load

    space = metadata_load(readme)
    commit = hub_api.list_repo_commits("tester/cifar10-cli")[0].commit_id
    assert space["models"] == ["tester/cifar10-cli"] and space["sdk"] == "gradio"
    (preload,) = space["preload_from_hub"]
    repo, files, revision = preload.split(" ")
    assert (repo, revision) == ("tester/cifar10-cli", commit)
    assert {"config.json", "model.weights.h5", "metadata.json"} <= set(files.split(","))
    assert readme.read_text().endswith((REPO_ROOT / "README.md").read_text().split("---", 2)[2])


def test_the_cli_reports_a_bad_folder_or_missing_member_repos_in_one_line(hub, folders, tmp_path):
    (tmp_path / "not-a-model").mkdir()
    bad_folder = run_client(hub, tmp_path, "-c", PUSH_CLI, str(tmp_path / "not-a-model"), "t/x")
    unpinned = run_client(hub, tmp_path, "-c", PUSH_CLI, str(folders["ensemble"]), "tester/ens")
    for result, message in [
        (bad_folder, "not a model or ensemble folder (no config.json)"),
        (unpinned, "members seed_a (../old), seed_b (../new) are local folders"),
    ]:
        assert result.returncode != 0
        assert result.stderr.startswith("cifar-push: error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1  # no traceback
    assert "tester/ens" not in hub.repos  # nothing was created before the error


PLAIN_KERAS = """
import json, sys
import keras
import numpy as np

images = np.load(sys.argv[1])["x_test"][:20]
probabilities = {
    repo: keras.saving.load_model(f"hf://{repo}").predict(images, verbose=0).tolist()
    for repo in sys.argv[2].split(",")
}
assert not [name for name in sys.modules if name.startswith("cifar_cnn")]
print(json.dumps(probabilities))
"""


@pytest.mark.slow
def test_every_shipped_model_loads_from_the_hub_in_plain_keras_and_by_revision(
    hub, hub_api, folders, tmp_path
):
    """A shipped folder of each architecture (others of one architecture differ only in their
    weights), pushed, loads with plain `keras.saving.load_model("hf://...")` in a process that
    never imports cifar_cnn, and with `from_pretrained("owner/repo@v1")`: both predict exactly
    like the folder. A repo in the legacy layout (pushed before the Keras layout: our config.json
    beside a zipped model.keras) still loads by revision."""
    from conftest import one_folder_per_architecture, save_legacy_folder

    from cifar_cnn.classifier import CifarClassifier

    legacy = save_legacy_folder(
        CifarClassifier.from_pretrained(folders["old"]), tmp_path / "legacy"
    )
    hub_api.create_repo("tester/cifar10-legacy")
    hub_api.upload_folder(repo_id="tester/cifar10-legacy", folder_path=legacy)
    hub_api.create_tag("tester/cifar10-legacy", tag="v1")
    first_of_each = one_folder_per_architecture()
    assert list(first_of_each) == ["mobilenet_transfer", "resnet_fast", "seed_cnn"]
    shipped = list(first_of_each.values())
    code = """
        from training.push import push_model_folder

        result = {}
        for folder, repo in zip(P["folders"].split(","), P["repos"].split(",")):
            tag = push_model_folder(folder, repo)["tag"]
            hub = CifarClassifier.from_pretrained(f"{repo}@{tag}", cache_dir=P["cache"])
            local = CifarClassifier.from_pretrained(folder)
            result[repo] = {
                "tag": tag,
                "identical": bool((hub.predict(IMAGES) == local.predict(IMAGES)).all()),
                "uncalibrated": local.predict(IMAGES, calibrated=False).tolist(),
            }
        legacy = CifarClassifier.from_pretrained("tester/cifar10-legacy@v1", cache_dir=P["cache"])
        local = CifarClassifier.load_folder(P["legacy"])
        report(**result, legacy_hub=legacy.predict(IMAGES), legacy_local=local.predict(IMAGES))
    """
    repos = [f"tester/cifar10-{folder.name.replace('_', '-')}" for folder in shipped]
    out = client(hub, tmp_path / "home", code, folders=",".join(map(str, shipped)),
                 repos=",".join(repos), cache=tmp_path / "cache", legacy=legacy)  # fmt: skip
    legacy_hub, legacy_local = probabilities(out["legacy_hub"]), probabilities(out["legacy_local"])
    np.testing.assert_array_equal(legacy_hub, legacy_local)
    assert {repo: (out[repo]["tag"], out[repo]["identical"]) for repo in repos} == {
        repo: ("v1", True) for repo in repos
    }
    plain = run_client(
        hub, tmp_path / "keras-home", "-c", PLAIN_KERAS, str(SLICE_PATH), ",".join(repos)
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    keras_probabilities = json.loads(plain.stdout.splitlines()[-1])
    for repo in repos:
        np.testing.assert_array_equal(
            probabilities(keras_probabilities[repo]), probabilities(out[repo]["uncalibrated"])
        )


@pytest.fixture(scope="module")
def refused_loads(hub, hub_api, seed_repo, folders, tmp_path_factory) -> dict:
    """What one client got for each load that must fail (as [type, message]): a download cut
    short, a repo, a revision and an ensemble that do not exist, a model with arbitrary code; and
    what the app served from a pinned repo beside a missing one. One process for all: each client
    costs a TensorFlow import."""
    import keras

    from cifar_cnn.classifier import CifarClassifier

    root = tmp_path_factory.mktemp("refusals")
    hub_api.create_repo("tester/cifar10-corrupted")
    hub_api.upload_folder(
        repo_id="tester/cifar10-corrupted", folder_path=folders["old"], commit_message="Upload"
    )
    size = (folders["old"] / "model.weights.h5").stat().st_size
    hub.serve_truncated("tester/cifar10-corrupted", "model.weights.h5", size // 2)  # same ETag

    inputs = keras.Input((32, 32, 3), dtype="uint8")
    hidden = keras.layers.Lambda(lambda x: keras.ops.cast(x, "float32")[:, 0, 0, :1])(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    CifarClassifier(
        keras.Model(inputs, outputs), config={"architecture": "lambda"}
    ).save_pretrained(root / "unsafe")
    hub_api.create_repo("tester/unsafe")
    hub_api.upload_folder(repo_id="tester/unsafe", folder_path=root / "unsafe")

    code = """
        from cifar_cnn.ensemble import CifarEnsemble
        from webapp.serving import load_models

        def error_of(load):
            try:
                load()
            except Exception as exception:
                return [type(exception).__name__, str(exception)]

        served = load_models(["tester/cifar10-seed@v1", "tester/no-such-model"])
        report(
            corrupted=error_of(lambda: CifarClassifier.from_pretrained("tester/cifar10-corrupted")),
            model=error_of(lambda: CifarClassifier.from_pretrained("tester/no-such-model")),
            revision=error_of(lambda: CifarClassifier.from_pretrained("tester/cifar10-seed@v99")),
            ensemble=error_of(lambda: CifarEnsemble.from_pretrained("tester/no-such-ensemble")),
            unsafe=error_of(lambda: CifarClassifier.from_pretrained("tester/unsafe")),
            served=served.names,
            failures=sorted(served.failures),
        )
    """
    return client(hub, root / "home", code)


def test_a_corrupted_download_is_refused(refused_loads):
    kind, message = refused_loads["corrupted"]
    assert kind == "ValueError"
    assert "model.weights.h5: checksum mismatch with config.json" in message


def test_a_missing_repo_or_revision_is_a_clear_error(refused_loads):
    assert refused_loads["model"][0] == "RepositoryNotFoundError"
    assert "tester/no-such-model" in refused_loads["model"][1]
    kind, message = refused_loads["revision"]
    assert kind == "RevisionNotFoundError" and "v99" in message
    assert refused_loads["ensemble"][0] == "RepositoryNotFoundError"
    assert "tester/no-such-ensemble" in refused_loads["ensemble"][1]


def test_a_pushed_model_with_arbitrary_code_is_refused(refused_loads):
    kind, message = refused_loads["unsafe"]
    assert kind == "ValueError" and "Lambda" in message and "safe_mode" in message


def test_the_app_serves_hub_repos_pinned_to_a_revision(refused_loads):
    assert refused_loads["served"] == ["tester/cifar10-seed@v1"]
    assert refused_loads["failures"] == ["tester/no-such-model"]
