"""The Python face of ``trtllm-prune``.

TensorRT-LLM 0.10 to 1.1 shipped ``tensorrt_llm.commands.prune``; 1.2 removed
it. This module offers the same public names with the same signatures and
behaviour, so a script written for that module runs unchanged after
``from trtllm_prune import prune_and_save`` (or ``import trtllm_prune as
prune``). The work is done by the ``trtllm-prune`` binary installed with
this package, the way ruff's and uv's packages run theirs: no PyTorch, no
TensorRT, and memory that does not grow with the checkpoint.

Beyond the original: keyword arguments for the tool's extras
(``prune=``, ``keep=``, ``hollow=``, ``full_copy=``, ``verify=``,
``jobs=``), a summary of what was done
as the return value, and :class:`PruneError`, a :class:`RuntimeError`
carrying the tool's one-line message and exit status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

__all__ = [
    "PRUNABLE_WEIGHTS",
    "PruneError",
    "can_prune",
    "find_binary",
    "load_config",
    "main",
    "prune_and_save",
]

#: The substrings that make a tensor prunable under the default rule: a
#: name that *contains* one of them is emptied (so FP8 scales such as
#: ``attention.qkv.weights_scaling_factor`` are too). The original's list,
#: in its order.
PRUNABLE_WEIGHTS: List[str] = [
    "attention.qkv.weight",
    "attention.proj.weight",
    "mlp.fc.weight",
    "mlp.proj.weight",
    "mlp.gate.weight",
]

_BINARY = "trtllm-prune"
_ERROR_PREFIX = "trtllm-prune: error: "

StrPath = Union[str, "os.PathLike[str]"]


class PruneError(RuntimeError):
    """The tool refused or failed; nothing was changed unless
    :attr:`exit_code` is 3 (the output is in place, a later step failed) or
    4 (a commit was cut short; the next run finishes it).

    ``str(error)`` is the tool's one-line message, which names the file,
    the problem and where.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def can_prune(key: str) -> bool:
    """Whether the default rule empties the tensor named ``key``: the name
    contains one of :data:`PRUNABLE_WEIGHTS`."""
    return any(w in key for w in PRUNABLE_WEIGHTS)


def load_config(config_path: StrPath) -> Dict[str, Any]:
    """The JSON object in ``config_path``, or ``{}`` when there is no such
    file (as the original did)."""
    path = Path(config_path)
    if not path.exists():
        return {}
    with open(path, "r") as f:
        return json.load(f)


def find_binary() -> str:
    """The path of the ``trtllm-prune`` binary this package runs.

    ``TRTLLM_PRUNE_BINARY`` wins when set; then the scripts folder of the
    environment this package is installed in (a virtualenv, the user
    scheme of ``pip install --user``, a ``--target``/``--prefix``
    install); then ``PATH``.
    """
    override = os.environ.get("TRTLLM_PRUNE_BINARY")
    if override:
        return override
    exe = _BINARY + (sysconfig.get_config_var("EXE") or "")
    candidates = [Path(sysconfig.get_path("scripts")) / exe]
    user_scheme = {"posix": "posix_user", "nt": "nt_user"}.get(os.name)
    if user_scheme and user_scheme in sysconfig.get_scheme_names():
        candidates.append(Path(sysconfig.get_path("scripts", scheme=user_scheme)) / exe)
    # A `pip install --target DIR` or `--prefix DIR` install: the package
    # sits in DIR/trtllm_prune (or DIR/lib/pythonX.Y/site-packages/...) and
    # the binary in DIR/bin.
    here = Path(__file__).resolve().parent
    for up in list(here.parents)[:5]:
        candidates.append(up / "bin" / exe)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(_BINARY)
    if found:
        return found
    raise FileNotFoundError(
        f"the {_BINARY} binary of the trtllm-prune-rs package was not found "
        f"(looked in {', '.join(str(c.parent) for c in candidates[:2])} and on PATH); "
        "reinstall the package or set TRTLLM_PRUNE_BINARY"
    )


def _patterns(flag: str, patterns: Union[None, str, Iterable[str]]) -> List[str]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    args: List[str] = []
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{flag} patterns must be strings, not {type(p).__name__}")
        args += [flag, p]
    return args


def _run(args: Sequence[str]) -> subprocess.CompletedProcess:
    """Runs the binary with ``args``; its warnings go to this process's
    stderr, its failure becomes :class:`PruneError`."""
    proc = subprocess.run(
        [find_binary(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    err = proc.stderr.decode("utf-8", "replace")
    errors = [line[len(_ERROR_PREFIX):] for line in err.splitlines() if line.startswith(_ERROR_PREFIX)]
    others = [line for line in err.splitlines() if not line.startswith(_ERROR_PREFIX)]
    if others:
        sys.stderr.write("\n".join(others) + "\n")
        sys.stderr.flush()
    if proc.returncode != 0:
        message = errors[-1] if errors else (err.strip() or f"{_BINARY} exited with status {proc.returncode}")
        raise PruneError(message, proc.returncode)
    return proc


def prune_and_save(
    ckpt_dir: StrPath,
    out_dir: Optional[StrPath],
    prune_all: bool = False,
    *,
    prune: Union[None, str, Iterable[str]] = None,
    keep: Union[None, str, Iterable[str]] = None,
    hollow: bool = False,
    full_copy: bool = False,
    verify: bool = False,
    jobs: Optional[int] = None,
) -> Dict[str, Any]:
    """Prunes the checkpoint in ``ckpt_dir`` into ``out_dir``, as the
    original function did: every tensor the rule prunes is written empty
    (shape ``[0]``, same dtype), every name is kept, and ``config.json``
    gets ``"is_pruned": true``. ``out_dir`` ``None`` means the sibling
    folder ``<ckpt_dir>.pruned``.

    Unlike the original, the whole output appears at once or not at all,
    the other files of the folder are copied too, and a local or remote
    (``s3://``, ``gs://``, ``az://``, ``https://``) checkpoint works.

    Extras, by keyword: ``prune`` and ``keep`` (glob patterns with ``*``,
    ``?`` and ``[...]`` classes, matched against whole tensor names; one
    string or several), ``hollow`` (emptied tensors keep
    their shape and offsets and read as zeros, stored as holes: the output
    loads wherever shapes are checked and takes about its kept bytes on
    disk), ``full_copy`` (copy a folder that is not a TensorRT-LLM
    checkpoint even when the rule prunes none of its tensors, which is
    refused otherwise), ``verify`` (re-read the output and
    compare before committing it), ``jobs`` (files written at once).

    Returns the tool's JSON summary (files, tensors and bytes). Raises
    :class:`PruneError` (a :class:`RuntimeError`) with the tool's message
    when it refuses or fails.
    """
    args = ["--checkpoint_dir", os.fspath(ckpt_dir)]
    if out_dir is not None:
        args += ["--out_dir", os.fspath(out_dir)]
    if prune_all:
        args.append("--prune_all")
    args += _patterns("--prune", prune)
    args += _patterns("--keep", keep)
    if hollow:
        args.append("--hollow")
    if full_copy:
        args.append("--full-copy")
    if verify:
        args.append("--verify")
    if jobs is not None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
        args += ["--jobs", str(jobs)]
    args.append("--json")
    proc = _run(args)
    return json.loads(proc.stdout.decode("utf-8"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line with ``argv`` (``sys.argv[1:]`` by default),
    as ``python -m trtllm_prune`` does; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    return subprocess.call([find_binary(), *args])
