"""Shared fixtures: the shipped data slice, a tiny trained model, the shared files if present."""

import contextlib
import os
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Each test process gets its own Gradio cache, set before Gradio is imported (it reads the
# variable once). Gradio names cached files by their content and a server that shuts down deletes
# every file it created, so a test server stopping in one process deleted the very file another
# process's server was about to serve (a 403 in CI, when both had classified the same ship).
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(
    prefix=f"gradio-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-"
)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import cifar_cnn  # noqa: E402, F401  (environment defaults before TensorFlow loads)
from cifar_cnn.data.cifar10 import REPO_ROOT, load_slice  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"
SHARED_ARCHIVE = SHARED / "data" / "cifar-10-python.tar.gz"
SHARED_MOBILENET = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"


def pytest_collection_modifyitems(items):
    """The slow tests first (their order kept): with two processes, the longest runs start at
    once and the short ones fill in around them, so neither process ends long after the other."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def free_ports(count: int = 1) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that are free right now."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="session")
def flagship():
    """The shipped resnet_fast, loaded once per test process."""
    from cifar_cnn.classifier import CifarClassifier

    return CifarClassifier.from_pretrained(REPO_ROOT / "models" / "resnet_fast")


@pytest.fixture(scope="session")
def slice_data():
    return load_slice()


@pytest.fixture(scope="session")
def shared_archive() -> Path:
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"needs the full CIFAR-10 archive at {SHARED_ARCHIVE} (CI has it)")
    return SHARED_ARCHIVE


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    if not SHARED_MOBILENET.is_file():
        pytest.skip(f"needs the ImageNet MobileNet weights at {SHARED_MOBILENET} (CI has them)")
    return SHARED_MOBILENET


@pytest.fixture(scope="session")
def trained_seed_cnn(slice_data, tmp_path_factory):
    """seed_cnn trained for one epoch on the slice and saved by the training pipeline; read-only
    (tests that change a model copy it first). Trained once per test run: with `-n 2`, the first
    process to need it trains it and the other waits for it (the pattern of pytest-xdist's docs)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process
        return _train_seed_cnn(slice_data, tmp_path_factory.mktemp("seed_cnn"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # this run's, common to its processes
    with FileLock(shared / "seed_cnn.lock"):
        folder = shared / "seed_cnn" / "model"
        if not (folder / "config.json").is_file():
            _train_seed_cnn(slice_data, shared / "seed_cnn")
    return folder


def _train_seed_cnn(slice_data, root: Path) -> Path:
    from cifar_cnn.models import get_recipe
    from training.model_folder import save_trained_model
    from training.train import train

    recipe = get_recipe("seed_cnn", epochs=1)
    result = train(recipe, slice_data, root / "run", verbose=0)
    save_trained_model(
        result, recipe, slice_data, root / "model", command="pytest fixture", evaluate=True
    )
    return root / "model"


@pytest.fixture(scope="session")
def served(trained_seed_cnn):
    """What the app serves in its tests: the flagship, a one-epoch seed_cnn, and a source that
    fails to load."""
    from webapp.serving import load_models

    flagship = REPO_ROOT / "models" / "resnet_fast"
    return load_models([str(flagship), str(trained_seed_cnn), "/srv/private/missing_model"])


def one_folder_per_architecture() -> dict[str, Path]:
    """The first shipped folder (by name) of each architecture. Folders of one architecture differ
    only in their weights and records, so tests of saving, loading and publishing take one each."""
    from cifar_cnn.hub.layout import model_folders, read_config

    first: dict[str, Path] = {}
    for folder in model_folders(REPO_ROOT / "models"):
        first.setdefault(read_config(folder)["architecture"], folder)
    return first


def save_legacy_folder(classifier, folder: Path) -> Path:
    """`classifier` saved as folders and repos were before the Keras layout: our config.json
    (with `model_sha256`) beside a zipped model.keras."""
    import json

    from cifar_cnn.hub.layout import sha256

    folder.mkdir(parents=True)
    classifier.model.save(folder / "model.keras")
    config = {k: v for k, v in classifier.config.items() if k != "weights_sha256"}
    config["model_sha256"] = sha256(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@contextlib.contextmanager
def running_app(served):
    """The production server (app.build_app: the demo, /healthz and /metrics) under uvicorn on
    a free local port, as `python app.py` runs it; yields its base URL."""
    import uvicorn

    import app

    (port,) = free_ports()
    server = uvicorn.Server(
        uvicorn.Config(
            app.build_app(served),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Gradio's event streams stay open; the 1 s graceful timeout ends uvicorn's wait for
        # them (30 s otherwise) and the lifespan still shuts down cleanly.
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the app server did not stop"


@pytest.fixture(scope="session")
def app_url(trained_seed_cnn):
    """The app serving the flagship and a tiny seed_cnn, through the production builder."""
    from webapp.serving import load_models

    served = load_models([str(REPO_ROOT / "models" / "resnet_fast"), str(trained_seed_cnn)])
    with running_app(served) as url:
        yield url + "/"
