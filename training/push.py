"""Publish a model or ensemble folder to the Hugging Face Hub: one commit, then a version tag.

>>> from training.push import push_model_folder, push_ensemble_folder
>>> push_model_folder("models/resnet_fast", "me/cifar10-resnet-fast")
{'repo_id': 'me/cifar10-resnet-fast', 'commit_oid': '3f9c...', 'tag': 'v1', 'commit_url': ...}
>>> CifarClassifier.from_pretrained("me/cifar10-resnet-fast@v1")    # pinned: later pushes leave it
>>> push_ensemble_folder(
...     "models/ensemble",
...     "me/cifar10-ensemble",
...     member_repos={"resnet_fast": "me/cifar10-resnet-fast@v1", "seed_cnn": "me/cifar10-seed@v1"},
... )

From the command line:

    cifar-push models/resnet_fast me/cifar10-resnet-fast
    cifar-push models/resnet_fast me/cifar10-resnet-fast --private --tag v2-long --message "..."
    cifar-push models/ensemble me/cifar10-ensemble \\
        --member resnet_fast=me/cifar10-resnet-fast@v1 --member seed_cnn=me/cifar10-seed@v1

A push is one commit of the whole folder (config.json, model.weights.h5, README.md, metrics.json,
history.json, plots), whose message names the training run; files the folder no longer has are
deleted from the main branch, so the repo mirrors the folder. The commit is then tagged (`v1`,
`v2`, ... or `--tag`), and old revisions stay downloadable: a model retrained and pushed later
never changes what `owner/name@v1` loads. The default tag is `v{N}`, one past the highest `vN` tag
(the number of pushes so far, plus one). Pushing an unchanged folder makes no new commit: its tag
then names the existing one. `--private` applies when the push creates the repo. The model card is
re-rendered on a temporary copy so that its usage snippet names the repo; the folder itself is
never modified, and it is checked (complete, checksum intact, loadable) before anything is sent.

An ensemble repo holds no weights, only its config.json (each member as `owner/name@revision`),
metrics and card. Members saved as local folders must be pushed first and named with
`--member NAME=OWNER/REPO@REVISION`.

The token comes from `--token`, else the `HF_TOKEN` environment variable or `hf auth login`. It is
never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.repocard import metadata_load, metadata_save

from cifar_cnn.atomic import temporary_sibling
from cifar_cnn.hub.layout import (
    CARD_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_PATTERNS,
    folder_files,
    is_ensemble,
    read_config,
    read_json,
)
from cifar_cnn.hub.reference import is_hub_reference, parse_reference


def default_commit_message(config: dict[str, Any]) -> str:
    """'Upload resnet_fast: cifar-train --model resnet_fast ...', or the architecture alone."""
    if is_ensemble(config):
        names = ", ".join(member["name"] for member in config["members"])
        return f"Upload ensemble ({config.get('voting', 'soft')} voting): {names}"
    name = config.get("architecture", "model")
    command = (config.get("training") or {}).get("command")
    return f"Upload {name}: {command}" if command else f"Upload {name}"


def push_model_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    tag: str | None = None,
    message: str | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """Push a model folder as one commit and tag it; return repo_id, commit_url, commit_oid, tag.

    The folder is checked first (`CifarClassifier.load_folder`: complete, checksum intact, loads
    in Keras safe mode), so a broken model is never published.
    """
    folder = Path(folder)
    config = read_config(folder)
    if is_ensemble(config):
        raise ValueError(f"{folder}: an ensemble folder; push it with push_ensemble_folder")
    api = _api(token)
    # Imported once the folder and token are known good (here and for ensembles below):
    # TensorFlow takes seconds to load and writes its own lines to stderr, which would bury a
    # one-line error.
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.load_folder(folder)
    repo_id = _create_repo(api, repo_id, private)
    tag = _choose_tag(api, repo_id, tag)
    with tempfile.TemporaryDirectory(prefix="cifar-push-") as tmp:
        staging = Path(tmp)
        for file in folder_files(folder, MODEL_PATTERNS):
            shutil.copy2(file, staging / file.name)
        classifier.write_model_card(staging, repo_id=repo_id)
        return _commit_and_tag(
            api, repo_id, staging, message or default_commit_message(config), tag
        )


def push_ensemble_folder(
    folder: str | os.PathLike,
    repo_id: str,
    member_repos: dict[str, str],
    *,
    private: bool = False,
    tag: str | None = None,
    message: str | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """Push an ensemble folder with its members referenced as Hub repos pinned to a revision.

    `member_repos` maps member names to "owner/name@revision"; it is required for each member
    whose source is a local folder, and overrides the source of any other. Each reference must
    exist on the Hub. Publishes config.json, metrics.json (if any) and a card naming the repo.
    """
    folder = Path(folder)
    config = read_config(folder)
    if not is_ensemble(config):
        raise ValueError(f"{folder}: not an ensemble folder; push it with push_model_folder")
    api = _api(token)
    members = [dict(member) for member in config["members"]]
    unknown = sorted(set(member_repos) - {member["name"] for member in members})
    if unknown:
        raise ValueError(f"no ensemble member named {', '.join(unknown)} in {folder}")
    unpinned = []
    for member in members:
        name, source = member["name"], member["source"]
        if name in member_repos:
            member["source"] = _pinned(name, member_repos[name])
        elif _is_local(folder, source) or not parse_reference(source).pinned:
            unpinned.append(f"{name} ({source})")
    if unpinned:
        raise ValueError(
            f"members {', '.join(unpinned)} are local folders or unpinned repos: push each "
            "member first, then give --member NAME=OWNER/REPO@REVISION for it"
        )
    for member in members:
        _check_exists(api, member["name"], member["source"])

    from cifar_cnn.report.model_card import render_ensemble_card  # TensorFlow: see above

    config = {**config, "members": members}
    metrics_path = folder / METRICS_FILE
    metrics = read_json(metrics_path)
    repo_id = _create_repo(api, repo_id, private)
    tag = _choose_tag(api, repo_id, tag)
    with tempfile.TemporaryDirectory(prefix="cifar-push-") as tmp:
        staging = Path(tmp)
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        if metrics is not None:
            shutil.copy2(metrics_path, staging / METRICS_FILE)
        card = render_ensemble_card(config, metrics, repo_id=repo_id)
        (staging / CARD_FILE).write_text(str(card))
        return _commit_and_tag(
            api, repo_id, staging, message or default_commit_message(config), tag
        )


def _api(token: str | None) -> HfApi:
    if token is None and get_token() is None:
        raise ValueError("no Hugging Face token: pass --token, set HF_TOKEN or run `hf auth login`")
    return HfApi(token=token, library_name="cifar_cnn")


def _create_repo(api: HfApi, repo_id: str, private: bool) -> str:
    """Create the model repo if needed; the full "owner/name" (a bare name goes to the user)."""
    # private=None: a new repo gets the account's default visibility, an existing one keeps its own
    return api.create_repo(repo_id, private=True if private else None, exist_ok=True).repo_id


def _choose_tag(api: HfApi, repo_id: str, tag: str | None) -> str:
    """`tag` if the repo does not have it yet, else the next `v{N}` (N = highest existing + 1)."""
    existing = {ref.name for ref in api.list_repo_refs(repo_id).tags}
    if tag is None:
        numbers = [int(match[1]) for name in existing if (match := re.fullmatch(r"v(\d+)", name))]
        return f"v{max(numbers, default=0) + 1}"
    if tag in existing:
        raise ValueError(f"{repo_id} already has a tag {tag!r}; a tag pins one model, pick another")
    return tag


def _commit_and_tag(api: HfApi, repo_id: str, staging: Path, message: str, tag: str) -> dict:
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=staging,
        commit_message=message,
        delete_patterns="*",  # the repo mirrors the folder (.gitattributes is always kept)
    )
    # Tag the commit just made, not "main", which another push may already have moved.
    api.create_tag(repo_id, tag=tag, revision=info.oid, tag_message=message)
    return {"repo_id": repo_id, "commit_url": info.commit_url, "commit_oid": info.oid, "tag": tag}


def _is_local(folder: Path, source: str) -> bool:
    """Whether an ensemble member source is a folder path rather than a Hub repo id."""
    return (folder / source).is_dir() or not is_hub_reference(source)


def _pinned(name: str, reference: str) -> str:
    try:
        pinned = parse_reference(reference).pinned
    except ValueError:
        pinned = False
    if not pinned or "/" not in reference:
        raise ValueError(
            f"member {name}: expected OWNER/REPO@REVISION (like me/cifar10-seed@v1), "
            f"got {reference!r}"
        )
    return reference


def _check_exists(api: HfApi, name: str, reference: str) -> None:
    repo, revision = parse_reference(reference)
    try:
        api.model_info(repo, revision=revision)
    except RepositoryNotFoundError:
        raise ValueError(f"member {name}: no repo {repo} on the Hub (or no access)") from None
    except RevisionNotFoundError:
        raise ValueError(f"member {name}: {repo} has no revision {revision!r}") from None


def link_to_space(readme: str | os.PathLike, repo_id: str, commit: str, files: list[str]) -> None:
    """List a pushed repo in a Space's README front matter: under `models:` (the Hub then links
    the Space and the model) and `preload_from_hub:` (the Space downloads these files of that
    commit when it is built, so its first visitor does not wait). An earlier entry for the same
    repo is replaced; the README is rewritten atomically."""
    readme = Path(readme)
    metadata = space_metadata(readme)
    models = [m for m in metadata.get("models") or [] if m != repo_id] + [repo_id]
    preload = [p for p in metadata.get("preload_from_hub") or [] if p.split()[0] != repo_id]
    preload.append(f"{repo_id} {','.join(sorted(files))} {commit}")
    staging = temporary_sibling(readme)
    try:
        shutil.copy2(readme, staging)
        metadata_save(staging, {**metadata, "models": models, "preload_from_hub": preload})
        os.replace(staging, readme)
    finally:
        staging.unlink(missing_ok=True)


def space_metadata(readme: Path) -> dict[str, Any]:
    """A Space README's front matter, or a ValueError saying why there is none."""
    metadata = metadata_load(readme) if readme.is_file() else None
    if metadata is None:
        raise ValueError(f"{readme}: not a Space README (no file, or no YAML front matter)")
    return metadata


# ---------------------------------------------------------------------- command line


def build_push_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-push",
        description="Publish a model or ensemble folder to the Hugging Face Hub as one commit, "
        "tagged v1, v2, ... so that users can pin a version.",
    )
    parser.add_argument("folder", type=Path, help="model folder (from cifar-train) or ensemble")
    parser.add_argument("repo_id", help="Hub model repo, OWNER/NAME (created if missing)")
    parser.add_argument(
        "--private", action="store_true", help="create the repo private (an existing one keeps its)"
    )
    parser.add_argument("--tag", help="tag of this version (default: v{N}, one past the last)")
    parser.add_argument("--message", help="commit message (default: names the training run)")
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN or hf auth login)")
    parser.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="NAME=OWNER/REPO@REVISION",
        help="ensembles: the pushed Hub repo of a member saved as a local folder (repeatable)",
    )
    parser.add_argument(
        "--space-readme",
        type=Path,
        metavar="README",
        help="also list the pushed repo in this Space README's models: and preload_from_hub:",
    )
    return parser


def push_main(argv: list[str] | None = None) -> None:
    args = build_push_parser().parse_args(argv)
    options = {"private": args.private, "tag": args.tag, "message": args.message}
    try:
        if args.space_readme:
            space_metadata(args.space_readme)  # a bad README is refused before anything is pushed
        config = read_config(args.folder)
        if is_ensemble(config):
            members = dict(_parse_member(text) for text in args.member)
            result = push_ensemble_folder(
                args.folder, args.repo_id, members, token=args.token, **options
            )
        elif args.member:
            raise ValueError("--member is for ensemble folders only")
        else:
            result = push_model_folder(args.folder, args.repo_id, token=args.token, **options)
        if args.space_readme:
            files = _api(args.token).list_repo_files(
                result["repo_id"], revision=result["commit_oid"]
            )
            link_to_space(args.space_readme, result["repo_id"], result["commit_oid"], files)
    except (ValueError, OSError, httpx2.HTTPError) as error:
        sys.exit(f"cifar-push: error: {' '.join(str(error).split())}")
    print(f"Committed {result['commit_url']}")
    pinned = f"{result['repo_id']}@{result['tag']}"
    print(f"Tagged {result['tag']}: load this version with from_pretrained({pinned!r})")
    if args.space_readme:
        print(f"Listed {result['repo_id']} in {args.space_readme} (models:, preload_from_hub:)")


def _parse_member(text: str) -> tuple[str, str]:
    name, sep, reference = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--member {text!r}: expected NAME=OWNER/REPO@REVISION")
    return name, reference


if __name__ == "__main__":
    push_main()
