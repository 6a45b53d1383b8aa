"""Checkpoints and results on disk: atomic writes, readable errors, resume checks, provenance. Every write
checks for room, goes to a temporary file of this process (removed if the write fails) and is renamed into
place, so a kill or a signal mid-save keeps the previous file. A lock per run name keeps a second process
off a run that is going on; the operating system drops it when the process dies, so it never stays stuck."""
import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path

import torch

from .config import DEFAULTS, ConfigError, UsageError, fields_with_role, from_dict
from .models import build_model


class CheckpointError(UsageError):
    """A checkpoint that cannot be used, with the file and what is wrong with it."""


class RunLocked(UsageError):
    """Another process is running under the same name and folder."""


class NoSpace(UsageError, OSError):
    """The disk cannot take a file that a command is about to write."""


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM; the command line exits with 128 + signum."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


_SIGNAL = {"pending": None, "wait": 0}  # wait > 0: in training steps or a write, where a signal is only noted


def _on_signal(signum, frame):
    again, _SIGNAL["pending"] = _SIGNAL["pending"], signum
    if again or not _SIGNAL["wait"]:
        raise Interrupted(signum)  # a second signal stops at once: a write under way removes its temporary


@contextlib.contextmanager
def signals():
    """with signals(): SIGINT and SIGTERM raise Interrupted, but never inside a write (it ends first), nor
    within stop_at_steps (the trainer stops at its next step boundary, `pending_signal`). Main thread only."""
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        _SIGNAL.update(pending=None, wait=0)


def pending_signal():
    return _SIGNAL["pending"]


def stop_at_steps(on: bool) -> None:
    """On: a signal waits (for a step boundary, or the write's end). Off: one that came meanwhile stops now."""
    _SIGNAL["wait"] += 1 if on else -1
    if _SIGNAL["pending"] and not _SIGNAL["wait"]:
        raise Interrupted(_SIGNAL["pending"])


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)  # raises if a part of it is a file
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def check_room(path: Path, nbytes: int, free: int = None) -> None:
    """NoSpace, naming the device (its mount point), unless path's folder has room for nbytes."""
    free = shutil.disk_usage(path.parent).free if free is None else free
    if free < nbytes:
        mount = Path(os.path.realpath(path.parent))
        while not os.path.ismount(mount):
            mount = mount.parent
        raise NoSpace(f"no space left on {mount} for {path} ({nbytes:,} bytes needed, {free:,} free): free some "
                      f"space or choose another --out; any earlier {path.name} is kept")


def write_atomic(data: bytes, path: Path) -> None:
    """The one write of every file a command makes: the run's lock still held, room checked, a temporary of
    this process written, flushed and renamed over path; a failure or an interrupt removes the temporary."""
    for lock in list(RunLock.held):
        lock.hold()
    tmp = _tmp(Path(path))
    stop_at_steps(True)
    try:
        check_room(Path(path), len(data))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        _SIGNAL["wait"] -= 1
        tmp.unlink(missing_ok=True)
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            check_room(Path(path), len(data), free=0)
        raise
    stop_at_steps(False)  # a signal that came during the write stops here (unless in training steps)


def save_atomic(obj, path: Path, room_only: int = None) -> None:
    """torch.save, serialised in memory first (so its size is known), through write_atomic. room_only=N:
    write nothing, check that there is room for it and N bytes more."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    if room_only is not None:
        return check_room(Path(path), buf.tell() + room_only)
    write_atomic(buf.getbuffer(), path)


def json_text(obj, indent=1) -> str:
    """JSON as the standard has it: a figure that is NaN or infinite (none) is null."""
    return json.dumps(json.loads(json.dumps(obj), parse_constant=lambda _: None), indent=indent)


def write_text_atomic(text: str, path: Path) -> None:
    """The same for the JSON results and logs: a reader never sees half a file."""
    write_atomic(text.encode(), path)


def contents(path) -> dict:
    """The dict in a JSON or torch file, or {} (an unreadable file, or anything else, is not one of ours)."""
    try:
        obj = json.loads(Path(path).read_text()) if Path(path).suffix == ".json" else \
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return {}
    return obj if isinstance(obj, dict) else {}


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
    try:  # validated as a new run's config is
        from_dict(state["config"]).validate()
    except (ConfigError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path} holds an invalid config ({e}): edited, or not written by nattools") from e
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


def data_mismatch(saved: dict, n: int, digest: str) -> str:
    """'' if these are the training images a checkpoint recorded (or it predates the record), else how not."""
    if saved.get("digest") in (None, digest) and saved.get("n", n) == n:
        return ""
    return (f"the training images: {saved.get('n')} in the checkpoint, {n} now, or other files (another "
            f"--data_root, or a changed folder, whose carved validation split then moves)")


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


def check_output(path, option: str = "--out", replaces=None) -> Path:
    """The one check of a file a command will write, before any work: named, ~ expanded, its folder made and
    writable, and the file absent or one that `replaces(path)` says this command may replace (never a folder)."""
    name, path = str(path), Path(path).expanduser()
    if not name.strip() or path.exists() and not (path.is_file() and (replaces is None or replaces(path))):
        raise UsageError(f"{option} {name!r}: " + ("name a file or folder" if not name.strip() else f"{path} is a "
                         f"folder" if path.is_dir() else f"{path} is not a file this command writes, and is never "
                         f"replaced") + f"; choose another {option}")
    try:  # a nameless temporary file: nothing is left behind, whatever happens
        path.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path.parent).close()
    except (FileExistsError, NotADirectoryError) as e:
        raise UsageError(f"{option} {path}: {e.filename} is a file, not a folder; choose another {option}") from e
    except OSError as e:
        raise UsageError(f"{option} {path}: the folder is not writable ({e.strerror}: {e.filename})") from e
    return path


class RunLock:
    """with RunLock(cfg.checkpoint_path): one process at a time per run (fcntl.flock on NAME.lock; no-op
    where fcntl is missing: Windows). Every write checks that the lock file is still the one held (`hold`)."""
    held = []

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
            self.file = self.file.close()
            raise RunLocked(f"another process (pid {holder}) is running {self.path.with_suffix('.pt')}; "
                            f"wait for it to end, or use another --name or --out") from None
        with contextlib.suppress(OSError):  # the pid only informs (a full disk is said before the first save)
            os.ftruncate(self.file.fileno(), 0)
            os.pwrite(self.file.fileno(), str(os.getpid()).encode(), 0)
        RunLock.held.append(self)
        return self

    def hold(self) -> None:
        """Still ours? The lock file goes if its folder is deleted during the run: lock it again, unless
        another process has started the run meanwhile (then this one stops before writing anything)."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino:
                return
        self.__exit__()
        try:
            self.__enter__()
        except RunLocked as e:
            raise RunLocked(f"{self.path.parent} was deleted during this run and {e}; this run stops without "
                            f"writing") from None

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()  # closing drops the lock; the file stays (deleting it would race)
            self.file = None
            RunLock.held.remove(self)
        return False
