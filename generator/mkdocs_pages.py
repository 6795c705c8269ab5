"""Every other page of the site read, converted and written by a second process, for the site stage
(mkdocs_hooks.py).

`mkdocs build` works in two passes over the pages, one page after another, leaving the second core idle:
it reads and converts every page (mkdocs.commands.build._populate_page: the on_pre_page and on_page_markdown
events, Python-Markdown, on_page_content; 6-7 s of the stage's 9-10 on these machines), then writes every
page through the theme's templates (_build_page: on_page_context, where the search plugin indexes the page,
the templates, on_post_page; about 2 s). Here a forked child runs each pass for every other page, with
mkdocs' own function on the same config, files, plugins and pages (copied by the fork), while mkdocs' loop
runs it for the rest:

- reading (`split_reading`, from the last on_nav to the first on_env): what each of the child's pages
  gained (its markdown, meta, HTML, table of contents, anchors, title, canonical URL) is set on mkdocs'
  page once mkdocs' loop is done, so the second pass and the link checks see every page as mkdocs alone
  leaves it;
- writing (`split_writing`, started at the loop's first page): the child writes its pages' HTML files and
  sends back the search index entries each added; they are put back in the pages' order once mkdocs' loop
  has written its last page.

The site is byte for byte the same (tests/test_publish.py builds it both ways). The child's log records
(mkdocs' warnings, which --strict counts, and errors) are sent back and handled by this process's loggers,
so a broken link on one of its pages fails the build as before; an exception on one of its pages is raised
here, with the child's traceback as its cause. Where fork is unavailable (background.start), the child's
pages are done in this process when their results are asked for.

What it relies on, and so its limits: whatever a plugin keeps per page outside the page (in the plugin, the
config or the File) is lost for the child's pages, and the search index's entries are rebuilt from those
the pages added. So the build is split only with the plugins known to keep nothing else (KNOWN_PLUGINS;
hooks files are ours), only in `mkdocs build` without --dirty (mkdocs_hooks.on_startup), and only from a
process's only thread (`splittable`). A child whose page hangs outlives a killed mkdocs process until it
finishes; one that finishes gets a broken pipe and exits.
"""

from __future__ import annotations

import logging
import pickle
import threading
import traceback
from typing import Callable

from mkdocs.commands import build as mkdocs_build
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

from . import background

log = logging.getLogger("mkdocs.atlas")
# The plugins whose per-page events are known to keep no state a child's pages would have to send back, or
# whose state split_writing puts back (Material's search index; the hooks' own read the pages' front matter
# at post_build). With any other plugin (mkdocs' own `search` among them) the build is not split.
KNOWN_PLUGINS = {"material/search", "material/offline", "glightbox"}
_POPULATE, _BUILD = mkdocs_build._populate_page, mkdocs_build._build_page  # mkdocs' own, put back by restore()


def restore() -> None:
    """Put mkdocs' own loop functions back (the hooks call it after the build, and when it fails)."""
    mkdocs_build._populate_page, mkdocs_build._build_page = _POPULATE, _BUILD


def splittable(config) -> bool:
    """Whether the build may be split here: only known plugins (KNOWN_PLUGINS, and hooks files, which are
    ours), and only from the main thread of a process that runs no other (forking a threaded process copies
    one thread; `mkdocs serve` rebuilds from its watcher's thread)."""
    plugins = {name for name in config.plugins if not name.endswith(".py")}
    return (plugins <= KNOWN_PLUGINS and threading.current_thread() is threading.main_thread()
            and threading.active_count() == 1)


def _theirs(files: Files) -> tuple[list[File], list[File]]:
    """(the pages mkdocs builds, in its order; every other one of them, the child's)."""
    pages = list(files.documentation_pages(inclusion=InclusionLevel.is_included))
    return pages, pages[1::2]


def split_reading(config, files: Files) -> Callable[[], None] | None:
    """Fork a child that reads and converts every other page of `files`, and make mkdocs' loop skip those
    pages. Call this in the last on_nav (the event right before the loop) and the function it returns in
    the first on_env (right after it): that waits for the child, puts mkdocs' loop function back and
    applies the child's pages, re-emitting its log records, then raises the exception a page raised there,
    if any. Returns None (nothing to do) when there are fewer than two pages."""
    pages, theirs = _theirs(files)
    if not theirs:
        return None
    populate = _POPULATE
    skipped = {file.src_uri for file in theirs}

    def populate_theirs() -> dict[str, dict]:
        states = {}
        for file in theirs:
            page = file.page if file.page is not None else Page(None, file, config)
            before = dict(vars(page))
            populate(page, config, files, False)
            state = {k: v for k, v in vars(page).items() if k not in before or before[k] is not v}
            if state.get("links_to_anchors"):  # keyed by File: sent by name, found again in the parent
                state["links_to_anchors"] = {f.src_uri: a for f, a in state["links_to_anchors"].items()}
            states[file.src_uri] = state
        return states

    result = background.start(lambda: _quietly(populate_theirs))

    def populate_ours(page: Page, config, files: Files, dirty: bool = False) -> None:
        if page.file.src_uri not in skipped:
            populate(page, config, files, dirty)

    mkdocs_build._populate_page = populate_ours

    def finish() -> None:
        mkdocs_build._populate_page = populate
        states = _outcome(result)
        for file in theirs:
            page = file.page  # made by mkdocs' loop, which went over the same pages
            for name, value in states[file.src_uri].items():
                if name == "links_to_anchors" and value:
                    value = {files.get_file_from_path(uri): anchors for uri, anchors in value.items()}
                setattr(page, name, value)
        log.debug(f"{len(theirs)} of {len(pages)} pages read and converted in a second process")

    return finish


def split_writing(config, files: Files) -> None:
    """Make mkdocs' loop that writes the pages (_build_page) hand every other page to a forked child, started
    at the loop's first page; at the loop's last page of this process, wait for the child, re-emit its log
    records (raise its exception, if any) and put the search index's entries back in the pages' order.
    Call this in on_env, after split_reading's finish, and `restore` after the build."""
    pages, theirs = _theirs(files)
    if not theirs:
        return
    build_page = _BUILD
    skipped = {file.src_uri for file in theirs}
    last_ours = [file.src_uri for file in pages if file.src_uri not in skipped][-1]
    search = config.plugins.get("material/search")
    entries = search.search_index.entries if search is not None and search.config.enabled else None
    added: dict[str, list] = {}  # page -> the search entries its on_page_context added, in this process
    child: list = []

    def build_indexed(page: Page, *args) -> None:
        start = len(entries) if entries is not None else 0
        build_page(page, *args)
        if entries is not None:
            added[page.file.src_uri] = entries[start:]

    def build_theirs(config, doc_files, nav, env, dirty) -> dict[str, list]:
        for file in theirs:
            build_indexed(file.page, config, doc_files, nav, env, dirty, file.inclusion.is_excluded())
        return added

    def build_ours(page: Page, config, doc_files, nav, env, dirty: bool = False, excluded: bool = False) -> None:
        if not child:
            child.append(background.start(lambda: _quietly(lambda: build_theirs(config, doc_files, nav, env, dirty))))
        if page.file.src_uri in skipped:
            return
        build_indexed(page, config, doc_files, nav, env, dirty, excluded)
        if page.file.src_uri == last_ours:  # the loop's later pages are the child's: this stays to skip them
            added.update(_outcome(child[0]))
            if entries is not None:
                entries[:] = [entry for file in doc_files for entry in added.get(file.src_uri, ())]
            log.debug(f"{len(theirs)} of {len(pages)} pages written in a second process")

    mkdocs_build._build_page = build_ours


class ChildTraceback(Exception):
    """The traceback of an exception raised in the child, as text: the cause of the one re-raised here."""

    def __str__(self) -> str:
        return self.args[0]


def _quietly(work: Callable[[], dict]) -> tuple[dict, list[logging.LogRecord], tuple | None]:
    """Run work(); returns (its result, or {} if it raised; the log records of mkdocs' loggers meanwhile;
    (the exception that stopped it, its traceback as text), or None). The records are kept, not printed: the
    parent prints and counts them (_outcome). Everything returned pickles: a record keeps its text and place,
    not its arguments; an exception that does not pickle (a class defined in a hooks file, say) is sent as a
    RuntimeError naming its type and message."""
    logger = logging.getLogger("mkdocs")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            records.append(logging.makeLogRecord({
                "name": record.name, "levelno": record.levelno, "levelname": record.levelname, "msg": message,
                "pathname": record.pathname, "lineno": record.lineno, "funcName": record.funcName,
                "created": record.created, "msecs": record.msecs}))

    handlers, keep = logger.handlers[:], Keep()
    for handler in handlers:
        logger.removeHandler(handler)
    logger.addHandler(keep)
    try:
        return work(), records, None
    except Exception as e:  # raised in the parent, after the records that explain it
        try:
            pickle.loads(pickle.dumps(e))
        except Exception:
            e = RuntimeError(f"{type(e).__qualname__}: {e}")
        return {}, records, (e, traceback.format_exc())
    finally:
        logger.removeHandler(keep)
        for handler in handlers:
            logger.addHandler(handler)


def _outcome(result: Callable[[], tuple]) -> dict:
    """Wait for a child started with _quietly: handle its log records here, raise its exception, return its result."""
    value, records, error = result()
    for record in records:
        logging.getLogger(record.name).handle(record)
    if error is not None:
        raise error[0] from ChildTraceback(error[1])
    return value
