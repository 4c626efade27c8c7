"""Model sources by name: a local folder, or a Hub repo id with an optional "@revision".

>>> from cifar_cnn.hub.reference import parse_reference
>>> parse_reference("me/cifar10-resnet-fast@v2")
HubReference(repo_id='me/cifar10-resnet-fast', revision='v2')
>>> parse_reference("me/cifar10-resnet-fast")
HubReference(repo_id='me/cifar10-resnet-fast', revision=None)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

# Hub repo ids are "name" or "owner/name" of letters, digits, '-', '_' and '.'.
_REPO_ID = re.compile(r"(?:[\w][\w.-]*/)?[\w][\w.-]*")
_REVISION = re.compile(r"[^@\s]+")


class HubReference(NamedTuple):
    repo_id: str
    revision: str | None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"

    @property
    def pinned(self) -> bool:
        """Whether a revision is named (a tag or commit pins one model for good)."""
        return self.revision is not None


def parse_reference(text: str | os.PathLike) -> HubReference:
    """Split "owner/name@revision" into repo id and revision (None when absent); a ValueError
    for anything that cannot be a Hub repo id."""
    text = str(text)
    repo_id, at, revision = text.partition("@")
    if not _REPO_ID.fullmatch(repo_id) or repo_id.count("/") > 1 or ".." in repo_id:
        raise ValueError(f"{text!r} is not a Hub repo id (owner/name, optionally @revision)")
    if at and not _REVISION.fullmatch(revision):
        raise ValueError(f"{text!r}: a revision after '@' must be a tag, branch or commit")
    return HubReference(repo_id, revision if at else None)


def is_hub_reference(text: str | os.PathLike) -> bool:
    """Whether `text` reads as a Hub repo id rather than a local path (it need not exist)."""
    text = str(text)
    if text.startswith((".", "/", "~")) or Path(text).exists():
        return False
    try:
        parse_reference(text)
    except ValueError:
        return False
    return True


def display_name(source: str | os.PathLike) -> str:
    """How people see a model source: a local folder by its last part (never a machine's
    folders), a Hub repo id ("owner/name", optionally "@revision") as given."""
    source = str(source)
    if Path(source).is_dir() or not is_hub_reference(source):
        return Path(source).name
    return source
