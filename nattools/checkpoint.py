"""Checkpoints and results on disk: atomic writes, readable errors, resume checks, provenance. Every write
goes to a temporary file of this process and is renamed into place, so a kill mid-save keeps the previous
file and two processes never share a temporary. A lock per run name keeps a second process off a run that
is going on; the operating system drops it when the process dies, so a killed run never leaves it stuck."""
import hashlib
import os
import pickle
import platform
import subprocess
import zipfile
from pathlib import Path

import torch

from .config import DEFAULTS, UsageError, fields_with_role, from_dict
from .models import build_model


class CheckpointError(UsageError):
    """A checkpoint that cannot be used, with the file and what is wrong with it."""


class RunLocked(UsageError):
    """Another process is running under the same name and folder."""


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)  # raises if a part of it is a file
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file of this process, flushed to disk, then renamed over path."""
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(text: str, path: Path) -> None:
    """The same for the JSON results and logs: a reader never sees half a file."""
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def read_state(path, device: str = "cpu") -> dict:
    """A checkpoint's dict, or CheckpointError naming the file and the problem (loading runs no code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}" + (" (that is a folder)" if path.is_dir() else ""))
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (EOFError, OSError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is truncated or not a PyTorch "
                              f"checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from e
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise CheckpointError(f"{path} is a PyTorch file but not a nattools checkpoint (no config and model)")
    return state


def load_checkpoint(path, device: str = "cpu"):
    """-> (model in eval mode, cfg). The run's weight average, if it kept one, is the model."""
    state = read_state(path, device)
    cfg = from_dict(state["config"])
    weights = state.get("averaged", state["model"])
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path} holds non-finite weights ({bad[0]}, ...): the run diverged; "
                              f"train again with a lower --lr (it used {cfg.lr})")
    model = build_model(cfg)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit the network its config describes "
                              f"({str(e).splitlines()[0][:120]})") from e
    return model.to(device).eval(), cfg


def resume_differences(saved: dict, cfg) -> list:
    """What a resumed run would change: every network and recipe setting that differs from the
    checkpoint's, as 'field: X in the checkpoint, Y now' (fields the checkpoint predates: defaults)."""
    saved = {**DEFAULTS, **saved}
    return [f"{f}: {saved[f]!r} in the checkpoint, {getattr(cfg, f)!r} now"
            for f in fields_with_role("network", "recipe") if saved[f] != getattr(cfg, f)]


def data_digest(train_set) -> str:
    """A short fingerprint of the training images (their pixels in memory, else their files), so
    that a resume on other images (another --data_root, a changed folder) is caught."""
    h = hashlib.sha256()
    images = getattr(train_set, "images", None)
    if images is not None:
        h.update(images.cpu().numpy().tobytes())
    else:
        for path, label in getattr(train_set, "samples", []):
            h.update(f"{Path(path).name}/{label}\n".encode())
        h.update(str(len(train_set)).encode())
    return h.hexdigest()[:16]


def versions() -> dict:
    import torchvision
    from . import __version__
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": torchvision.__version__, "nattools": __version__}


def git_commit() -> str:
    """The project's commit, '+dirty' when tracked files differ from it, or 'unknown'."""
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if sha.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def check_writable(folder: Path) -> None:
    """Make folder/checkpoints and folder/results and prove they take a file, before any work."""
    folder = Path(folder)
    for sub in (folder / "checkpoints", folder / "results"):
        try:
            probe = _tmp(sub / "write-probe")
            probe.write_bytes(b"")
            probe.unlink()
        except (FileExistsError, NotADirectoryError) as e:
            raise UsageError(f"--out {folder}: {e.filename} is a file, not a folder; choose another --out") from e
        except OSError as e:
            raise UsageError(f"--out {folder} is not writable ({e.strerror}: {e.filename}); "
                             f"choose another --out") from e


class RunLock:
    """with RunLock(cfg.checkpoint_path): one process at a time per run (fcntl.flock on NAME.lock; no-op
    where fcntl is missing: Windows)."""

    def __init__(self, checkpoint: Path):
        self.path, self.file = Path(checkpoint).with_suffix(".lock"), None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "?"
            self.file.close()
            raise RunLocked(f"another process (pid {holder}) is running {self.path.with_suffix('.pt')}; "
                            f"wait for it to end, or use another --name or --out") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()  # closing drops the lock; the file stays (deleting it would race)
        return False
