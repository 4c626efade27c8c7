"""Downloads from the Hugging Face Hub through `huggingface_hub`'s cache.

They honour `cache_dir=`, `HF_HOME`, `HF_HUB_OFFLINE=1` and mirrors via `HF_ENDPOINT`; a cache
miss while offline is a ValueError that names the repo and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from cifar_cnn.hub.reference import parse_reference


def download_snapshot(
    reference: str, patterns: tuple[str, ...], revision: str | None = None, **hub_kwargs: Any
) -> Path:
    """The local folder of `reference` ("owner/name[@revision]") holding the files matching
    `patterns`. `revision` applies when the reference names none; `hub_kwargs` are
    `snapshot_download`'s (`cache_dir`, `token`, `force_download`, `local_files_only`)."""
    parsed = parse_reference(reference)
    revision = parsed.revision or revision
    try:
        folder = snapshot_download(
            repo_id=parsed.repo_id, revision=revision, allow_patterns=list(patterns), **hub_kwargs
        )
    except LocalEntryNotFoundError:
        raise not_cached_error(parsed.repo_id, revision) from None
    return Path(folder)


def not_cached_error(repo_id: str, revision: str | None) -> ValueError:
    """The error for a repo that is not in the local cache and cannot be downloaded now."""
    reason = (
        "HF_HUB_OFFLINE is set"
        if constants.HF_HUB_OFFLINE
        else "the Hub was not reachable or local_files_only was set"
    )
    return ValueError(
        f"{repo_id}@{revision or 'main'}: not in the local cache and {reason}; "
        f"download it once online, or pass a local folder"
    )
