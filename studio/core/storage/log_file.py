"""The studio's log: a rotating file in the data folder's logs/ that keeps the traceback of
every internal error and the reason of every failed job, where the artist sees one sentence.
Help -> "Open log folder" shows it; a bug report attaches it.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from studio.core.storage.paths import logs_dir

LOG_FILE_NAME = "studio.log"
MAX_LOG_BYTES = 1_000_000  # a few thousand failures with tracebacks
LOG_BACKUPS = 3  # studio.log.1 ... .3: a long session's history without growing without bound
LOGGER = "studio"  # every module logs under it (logging.getLogger(__name__))


def start_log_file(folder: Path | None = None) -> Path | None:
    """Send the studio's log records (INFO and up) to `folder`/studio.log, rotated. Returns the
    file, or None when the folder cannot be written (the studio still runs, unlogged). Calling
    it again for the same file adds nothing."""
    path = (folder or logs_dir()) / LOG_FILE_NAME
    logger = logging.getLogger(LOGGER)
    for handler in logger.handlers:
        if isinstance(handler, logging.handlers.RotatingFileHandler) and Path(handler.baseFilename) == path.absolute():
            return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS,
                                                       encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return path


def stop_log_file(path: Path) -> None:
    """Detach and close the handler of `path` (tests; the app keeps its log until exit)."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.handlers.RotatingFileHandler) and Path(handler.baseFilename) == path.absolute():
            logger.removeHandler(handler)
            handler.close()
