"""Uploads as the app receives them: a path, or Gradio's file record, checked to be a file
uploaded to this server; error messages that name the file as its owner knows it."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder


def uploaded_path(
    upload: str | os.PathLike | dict | None, upload_folder: str | os.PathLike | None = None
) -> str:
    """The local file of an upload, as the app receives it: a path, or Gradio's file record
    (``{"path": ..., "orig_name": ...}``) when an event skips Gradio's own image decoding so
    that this library, not Gradio, decodes and judges every uploaded file. With
    `upload_folder`, a file record must point inside it."""
    if upload is None:
        raise ValueError("no image: please upload one first")
    if isinstance(upload, dict):
        if not upload.get("path"):
            raise ValueError("the upload has no file; please upload the image again")
        path = Path(str(upload["path"])).resolve()
        if upload_folder is not None and not path.is_relative_to(Path(upload_folder).resolve()):
            # Only files uploaded to this server: never a path on it that a client names.
            raise ValueError("the upload is not a file uploaded to this app; please upload it")
        return str(upload["path"])
    if isinstance(upload, (str, os.PathLike)):
        return str(upload)
    raise ValueError(f"expected an uploaded file, got {type(upload).__name__}")


def upload_error_message(error: Exception, upload: str | os.PathLike | dict | None) -> str:
    """`error`'s message as the uploader should read it: the server's temporary path to the
    file replaced by the name the file had on their machine."""
    message = str(error)
    if isinstance(upload, dict) and upload.get("path") and upload.get("orig_name"):
        message = message.replace(str(upload["path"]), str(upload["orig_name"]))
    return message


def shown_error(message: str) -> gr.Error:
    """An error for the visitor that stays on screen until they close it (Gradio's default
    fades after a few seconds, while the outputs just say "Error")."""
    return gr.Error(message, duration=None)


def image_handler(function):
    """For events whose first input is an uploaded image, registered with `preprocess=False`:
    pass the file's path on (cifar_cnn decodes it, so every bad file gets the library's own
    message) and show a bad upload or choice as a message in the UI and a clear API error."""

    @functools.wraps(function)
    def wrapper(upload, *args):
        if upload is None:
            raise shown_error("Please upload an image first.")
        try:
            path = uploaded_path(upload, upload_folder=get_upload_folder())
            return function(path, *args)
        except ValueError as error:
            raise shown_error(upload_error_message(error, upload)) from None

    return wrapper
