"""Half of mkdocs' pages read and converted in a second process, for the site stage (mkdocs_hooks.py).

`mkdocs build` works in two passes: it reads and converts every page (mkdocs.commands.build._populate_page:
the on_pre_page and on_page_markdown events, Python-Markdown, on_page_content), then writes every page
through the theme's templates. The first pass is two thirds of the stage (6-7 s of 9-10 on these machines),
one page after another, and the second core stays idle. Here a forked child runs that pass for every other
page (mkdocs' own function, on the same config, files and plugins, copied by the fork) while mkdocs runs it
for the rest; when mkdocs' loop is done, what each of the child's pages gained (its markdown, meta, HTML,
table of contents, anchors, title, canonical URL) is set on mkdocs' page, so the second pass, the search
index and the link checks see every page as a sequential build leaves it. The site is byte for byte the
same (tests/test_publish.py).

The child's log records (mkdocs' warnings, which --strict counts, and errors) are sent back and handled
by this process's loggers, so a broken link on one of its pages fails the build as before. Where fork is
unavailable (background.start), the same pages are converted in this process at the end of the loop.
"""

from __future__ import annotations

import logging
from typing import Callable

from mkdocs.commands import build as mkdocs_build
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

from . import background

log = logging.getLogger("mkdocs.atlas")


def start(config, files: Files) -> Callable[[], None] | None:
    """Fork a child that reads and converts every other page of `files`, and make mkdocs' loop skip those
    pages. Call this in the last on_nav (the event right before the loop) and the function it returns in
    the first on_env (right after it): that waits for the child, puts mkdocs' loop function back and
    applies the child's pages, re-emitting its log records, then raises the exception a page raised there,
    if any. Returns None (nothing to do) when there are fewer than two pages."""
    pages = files.documentation_pages(inclusion=InclusionLevel.is_included)
    theirs = list(pages[1::2])
    if not theirs:
        return None
    populate = mkdocs_build._populate_page
    skipped = {file.src_uri for file in theirs}
    result = background.start(lambda: _populate_quietly(populate, theirs, config, files))

    def skip_theirs(page: Page, config, files: Files, dirty: bool = False) -> None:
        if page.file.src_uri not in skipped:
            populate(page, config, files, dirty)

    mkdocs_build._populate_page = skip_theirs

    def finish() -> None:
        mkdocs_build._populate_page = populate
        states, records, error = result()
        for record in records:
            logging.getLogger(record.name).handle(record)
        if error is not None:
            raise error
        for file in theirs:
            _apply(file, states[file.src_uri], files)
        log.debug(f"{len(theirs)} of {len(pages)} pages read and converted in a second process")

    return finish


def _populate_quietly(populate, theirs: list[File], config, files: Files):
    """Run `populate` (mkdocs' _populate_page) on each of `theirs`; returns ({src_uri: the attributes it
    set on the page}, the log records of mkdocs' loggers meanwhile, the exception that stopped it or None).
    The records are kept, not printed: the parent prints and counts them."""
    logger = logging.getLogger("mkdocs")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record.msg, record.args = record.getMessage(), None  # the arguments may not pickle
            record.exc_info = record.exc_text = None
            records.append(record)

    handlers, keep = logger.handlers[:], Keep()
    for handler in handlers:
        logger.removeHandler(handler)
    logger.addHandler(keep)
    states: dict[str, dict] = {}
    error = None
    try:
        for file in theirs:
            page = file.page if file.page is not None else Page(None, file, config)
            before = dict(vars(page))
            populate(page, config, files, False)
            state = {k: v for k, v in vars(page).items() if k not in before or before[k] is not v}
            if state.get("links_to_anchors"):  # keyed by File: sent by name, found again in the parent
                state["links_to_anchors"] = {f.src_uri: a for f, a in state["links_to_anchors"].items()}
            states[file.src_uri] = state
    except Exception as e:  # raised in the parent, after the records that explain it
        error = e
    finally:
        logger.removeHandler(keep)
        for handler in handlers:
            logger.addHandler(handler)
    return states, records, error


def _apply(file: File, state: dict, files: Files) -> None:
    """Set what the child's conversion of `file` gave on this process's page of it."""
    page = file.page if file.page is not None else Page(None, file, state.get("config"))
    for name, value in state.items():
        if name == "links_to_anchors" and value:
            value = {files.get_file_from_path(uri): anchors for uri, anchors in value.items()}
        setattr(page, name, value)
