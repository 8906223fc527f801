"""Download a Hugging Face dataset repository to a local directory, for offline training.

    python scripts/download_dataset.py --target=openai/gsm8k --path=./dataset/openai/gsm8k

The repository's files land directly under ``--path`` (for GSM8K: ``main/train-*.parquet``,
``main/test-*.parquet``, ``socratic/...``), which is the layout the ``huggingface_dat_repo`` task
reader reads without network access. Point the config at it::

    task_reader:
      type: huggingface_dat_repo
      huggingface_dat_repo:
        dataset_path: DIR        # or DIR/main with dataset_name: ""
        dataset_name: main
        training_split: train
        validation_split: test

For GSM8K the script then loads ``main`` train/test from DIR and prints their row counts and one
example, so a broken download is noticed here and not at the start of a training run.

Failures (no network, ``HF_HUB_OFFLINE=1``, unknown repo) exit with status 1 and one line on
stderr. This script only needs ``huggingface_hub`` (and ``datasets`` for the check), not astuner,
so it can run on whichever machine has Hub access; copy DIR over afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_TARGET = "openai/gsm8k"
DEFAULT_PATH = "./dataset/openai/gsm8k"


class DownloadError(Exception):
    """A failure reported to the user as one line, without a traceback."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Download a Hugging Face dataset repo (default: GSM8K) to a local directory "
        "that astuner's huggingface_dat_repo task reader can read offline.",
    )
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"dataset repo id on the Hugging Face Hub (default: {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--path",
        default=DEFAULT_PATH,
        help="local directory the repo's files are written to, created if needed; set the task "
        f"reader's dataset_path to it (default: {DEFAULT_PATH})",
    )
    return parser.parse_args(argv)


def download(target: str, path: str) -> None:
    """Fetch every file of the dataset repo into ``path`` (files already there are reused)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise DownloadError(f"huggingface_hub is not installed ({exc}): pip install huggingface_hub") from exc
    try:
        snapshot_download(repo_id=target, repo_type="dataset", local_dir=path)
    except Exception as exc:
        raise DownloadError(describe_failure(exc, target, path)) from exc


def describe_failure(exc: BaseException, target: str, path: str) -> str:
    """One line saying why the download failed and what to do about it."""
    names = {type(link).__name__ for link in _chain(exc)}
    text = " ".join(str(link) for link in _chain(exc))
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    unreachable = (
        offline
        or names & {"OfflineModeIsEnabled", "ConnectError", "ConnectTimeout", "ConnectionError"}
        or "internet connection" in text
        or "outgoing traffic has been disabled" in text
    )
    if unreachable:
        reason = "HF_HUB_OFFLINE=1 is set" if offline else _first_line(exc).removeprefix("Got: ")
        return (
            f"cannot reach the Hugging Face Hub ({reason}): run this on a machine with Hub access, "
            f"or copy an existing download to {path}"
        )
    if names & {"RepositoryNotFoundError", "GatedRepoError"}:
        return (
            f"dataset repo {target!r} was not found on the Hub, or it is private or gated "
            f"({_first_line(exc)})"
        )
    return f"downloading {target!r} to {path} failed: {type(exc).__name__}: {_first_line(exc)}"


def list_files(path: str) -> None:
    """Print what was downloaded (hub bookkeeping under ``.cache/`` left out)."""
    root = Path(path)
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and ".cache" not in p.relative_to(root).parts
    )
    print(f"{len(files)} files in {root.resolve()}:")
    for file in files:
        print(f"  {file.relative_to(root)}  ({file.stat().st_size:,} bytes)")


def verify_gsm8k(path: str) -> None:
    """Load ``main`` train/test from the download and show row counts and one example."""
    try:
        import datasets
    except ImportError as exc:
        raise DownloadError(
            f"downloaded to {path}, but datasets is not installed to check it ({exc})"
        ) from exc
    for split in ("train", "test"):
        try:
            rows = datasets.load_dataset(path, "main", split=split)
        except Exception as exc:
            raise DownloadError(
                f"downloaded to {path}, but load_dataset({path!r}, 'main', split={split!r}) failed: "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        print(f"main/{split}: {rows.num_rows} rows")
        if split == "train" and rows.num_rows:
            example = rows[0]
            answer_lines = str(example.get("answer", "")).strip().splitlines() or [""]
            print(f"  example question: {example.get('question')}")
            print(f"  example answer (last line): {answer_lines[-1]}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        download(args.target, args.path)
        list_files(args.path)
        if args.target.rstrip("/").rsplit("/", 1)[-1].lower() == "gsm8k":
            verify_gsm8k(args.path)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done: set task_reader.huggingface_dat_repo.dataset_path to {args.path}")
    return 0


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not s for s in seen):
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
