"""Launching a chapter where the repository is not at hand: Colab, or any bare Jupyter kernel.

Every chapter starts with the same small cell (its input hidden in the book). Where `nattools`
is not installed it installs it from the repository, and where the project's `data/`
(checkpoints and results files) is not found it downloads the repository's archive and unpacks
`data/` next to the notebook. In a checkout of the repository both are present and the cell does
nothing. The repository URL and branch are set once, in the root `_config.yml` (`repository:`);
`first_cell` writes the cell from them and `sync_chapters` keeps every chapter's copy in step
(a test checks it).

    python -m nattools.study.launch            # rewrite the first cell of every chapter from _config.yml
"""
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]       # the repository, when nattools runs from a checkout
MARK = "# Launch cell"                            # how a chapter's first cell is recognised


def config_path(start=None) -> Path:
    """The book's _config.yml: in `start` (default: the working directory) or a folder above it,
    else the checkout this package lives in."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents, ROOT):
        if (folder / "_config.yml").is_file():
            return folder / "_config.yml"
    raise FileNotFoundError("no _config.yml found above the working directory or in the checkout")


def repository(path=None) -> tuple:
    """(url, branch) of the repository, read from the `repository:` keys of _config.yml."""
    import yaml
    section = yaml.safe_load(Path(path or config_path()).read_text()).get("repository") or {}
    url = str(section.get("url", ""))
    if not url.startswith("https://"):
        raise ValueError(f"_config.yml: repository.url should be an https:// URL, got {url!r}")
    return url, str(section.get("branch") or "main")


def first_cell(url: str, branch: str) -> str:
    """The source of every chapter's first cell, for the repository (url, branch)."""
    return "\n".join([
        f"{MARK}: where nattools or the project's data/ is missing (Colab, a bare kernel),",
        "# install nattools and fetch data/ from the repository named in _config.yml. Here, with",
        "# both present, it does nothing.",
        "import importlib, importlib.util, subprocess, sys",
        f'REPOSITORY, BRANCH = "{url}", "{branch}"',
        'if importlib.util.find_spec("nattools") is None:',
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q",',
        '                    f"git+{REPOSITORY}@{BRANCH}"], check=True)',
        "    importlib.invalidate_caches()",
        "from nattools.study import launch",
        "launch.fetch_data(REPOSITORY, BRANCH)",
    ])


def data_present(start=None) -> bool:
    """Whether the project's data/ (with results/) is at hand: where the chapters look for it."""
    from .runs import data_dir
    return (data_dir() / "results").is_dir()


def archive_url(url: str, branch: str) -> str:
    """The repository's archive of `branch` (GitHub's URL scheme)."""
    return f"{url.rstrip('/')}/archive/refs/heads/{branch}.tar.gz"


def unpack_data(archive: bytes, dest: Path) -> int:
    """Unpack the data/ folder of a repository archive (top folder NAME-BRANCH/) into dest/data
    -> the number of files written. Only plain files under data/ are taken."""
    count = 0
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 3 or parts[1] != "data" or not member.isfile() or ".." in parts:
                continue
            target = dest.joinpath("data", *parts[2:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            count += 1
    return count


def fetch_data(url: str, branch: str = "main", dest=None) -> None:
    """Fetch the project's data/ from the repository's archive into dest (default: the working
    directory) unless it is already at hand, and say so in one line; silent when nothing is done."""
    if data_present():
        return
    dest = Path(dest or Path.cwd())
    with urllib.request.urlopen(archive_url(url, branch), timeout=120) as response:
        count = unpack_data(response.read(), dest)
    print(f"fetched {count} files of data/ from {url} ({branch})")


def chapter_files(book=None) -> list:
    return sorted(Path(book or ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def launch_cell(nb: dict):
    """The chapter's first code cell if it is the launch cell, else None."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if code and "".join(code[0]["source"]).startswith(MARK):
        return code[0]
    return None


def sync_chapters(book=None, config=None) -> list:
    """Write (or rewrite) the launch cell at the top of every chapter -> the files changed."""
    url, branch = repository(config)
    source = first_cell(url, branch)
    changed = []
    for path in chapter_files(book):
        nb = json.loads(path.read_text())
        cell = launch_cell(nb)
        if cell is None:
            cell = {"cell_type": "code", "execution_count": None, "id": "launch", "metadata": {},
                    "outputs": [], "source": []}
            first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
            nb["cells"].insert(first_code, cell)
        lines = source.splitlines(keepends=True)
        tags = cell["metadata"].setdefault("tags", [])
        if cell["source"] != lines or "hide-input" not in tags:
            cell["source"] = lines
            if "hide-input" not in tags:
                tags.append("hide-input")
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


if __name__ == "__main__":
    done = sync_chapters()
    print("\n".join(str(p) for p in done) or "every chapter's launch cell is up to date", file=sys.stdout)
