"""webapp.uploads: what counts as an upload, and errors that name the uploader's file."""

import pytest

from cifar_cnn.data.cifar10 import REPO_ROOT
from webapp import uploads

SHIP = REPO_ROOT / "examples" / "test0001_ship.png"
FLAGSHIP = REPO_ROOT / "models" / "resnet_fast"


def test_an_upload_is_a_path_or_gradios_file_record():
    assert uploads.uploaded_path("/tmp/a.png") == "/tmp/a.png"
    assert uploads.uploaded_path({"path": "/tmp/b.jpg", "orig_name": "b.jpg"}) == "/tmp/b.jpg"
    with pytest.raises(ValueError, match="please upload one first"):
        uploads.uploaded_path(None)
    with pytest.raises(ValueError, match="upload has no file"):
        uploads.uploaded_path({"url": "http://example.com/x.png", "path": None})
    with pytest.raises(ValueError, match="expected an uploaded file, got int"):
        uploads.uploaded_path(3)


def test_an_upload_error_names_the_uploaders_file_not_the_servers_copy():
    upload = {"path": "/tmp/gradio/0af3/notes.png", "orig_name": "notes.png"}
    error = ValueError("/tmp/gradio/0af3/notes.png: not an image file (format not recognised)")
    assert uploads.upload_error_message(error, upload) == (
        "notes.png: not an image file (format not recognised)"
    )
    assert uploads.upload_error_message(error, "/tmp/gradio/0af3/notes.png") == str(error)


def test_a_file_record_must_point_into_the_upload_folder(tmp_path):
    inside = tmp_path / "uploads" / "abc" / "cat.png"
    record = {"path": str(inside), "orig_name": "cat.png"}
    assert uploads.uploaded_path(record, upload_folder=tmp_path / "uploads") == str(inside)
    with pytest.raises(ValueError, match="not a file uploaded to this app"):
        uploads.uploaded_path({"path": "/etc/hostname"}, upload_folder=tmp_path / "uploads")
    with pytest.raises(ValueError, match="not a file uploaded to this app"):
        uploads.uploaded_path(
            {"path": str(tmp_path / "uploads" / ".." / "secret.png")},
            upload_folder=tmp_path / "uploads",
        )
