"""What the Makefile needs to know of a config, printed for `$(shell ...)`: its build directory, its site
directory, its data files and its sections' config files. Standard library only: Make runs it with the
system Python while parsing, before .venv exists. Paths resolve as generator/config.py resolves them
(against the config file's directory; tests/test_make_paths.py holds the two together), printed relative
to the current directory when inside it.

    python3 generator/make_paths.py CONFIG build|site|data|sections
    python3 generator/make_paths.py CONFIG make

`make` prints all of them in one line of words for the Makefile's one `$(shell ...)`: build=P site=P data=P...
section=CONFIG... and, for each section, CONFIG:build=P and CONFIG:data=P... (each start of a Python costs
Make's parse about 0.2 s, and it used to start ten).
"""

import sys
import tomllib
from pathlib import Path

DEFAULTS = {"build": ("site", "build_dir", "build"), "site": ("site", "site_dir", "site"),
            "data": ("data", "dir", "data/mnist")}


def show(path: Path) -> str:
    path = path.resolve()
    here = Path.cwd().resolve()
    return path.relative_to(here).as_posix() if path.is_relative_to(here) else str(path)


def query(config: Path, what: str) -> list[str]:
    settings = tomllib.loads(config.read_text(encoding="utf-8"))
    root = config.resolve().parent
    if what == "sections":
        return [show(root / s) for s in settings.get("site", {}).get("sections", [])]
    section, key, default = DEFAULTS[what]
    path = root / settings.get(section, {}).get(key, default)
    if what == "data":  # the files training reads: a directory's files, or one file (mnist.npz)
        return [show(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")] \
            if path.is_dir() else [show(path)]
    return [show(path)]


def make_words(config: Path) -> list[str]:
    """Everything the Makefile asks of `config` and of its sections, as key=value words."""
    words = [f"{what}={p}" for what in ("build", "site", "data", "sections") for p in query(config, what)]
    for section in query(config, "sections"):
        words += [f"{section}:{what}={p}" for what in ("build", "data") for p in query(Path(section), what)]
    return words


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in (*DEFAULTS, "sections", "make"):
        print(f"usage: {Path(__file__).name} CONFIG build|site|data|sections|make", file=sys.stderr)
        return 2
    try:
        print(" ".join(make_words(Path(argv[0])) if argv[1] == "make" else query(Path(argv[0]), argv[1])))
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"error: {argv[0]}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
