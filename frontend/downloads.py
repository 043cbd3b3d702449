"""Files built at the click live long enough to be fetched.

``st.download_button`` with a callable ``data`` runs it at the click and hands the browser a
URL, but Streamlit then treats the new file like any file no element refers to: marked at the
end of the next script run, deleted at the end of the one after. This page ends several runs a
second (the tick strip's fragment, in every open tab), so a busy browser could fetch the URL
after it was gone: a canceled download (seen in Chromium, streamlit 1.67). Here a file built
at a click is kept out of that clean-up for ``GRACE_S``; it is then collected as usual.

It wraps two methods of Streamlit's ``MediaFileManager``; if a Streamlit release renames them
the wrap is skipped with a warning (and downloads keep Streamlit's own behaviour).
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)
GRACE_S = 60.0


def keep_click_built_files(grace_s: float = GRACE_S) -> None:
    """Install the grace period once per process (idempotent)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    if getattr(MediaFileManager, "_click_files_kept", False):
        return
    execute = getattr(MediaFileManager, "execute_deferred", None)
    inactive = getattr(MediaFileManager, "_get_inactive_file_ids", None)
    if execute is None or inactive is None:
        log.warning("streamlit changed: files built at a click get no grace period")
        return
    built_at: dict[str, float] = {}  # file id -> monotonic time it was built
    lock = threading.Lock()

    def execute_deferred(self, file_id: str) -> str:
        url = execute(self, file_id)
        with lock:
            built_at[url.rsplit("/", 1)[-1].split(".", 1)[0]] = time.monotonic()
        return url

    def get_inactive_file_ids(self) -> set[str]:
        ids = inactive(self)
        now = time.monotonic()
        with lock:
            for fid in [f for f, t in built_at.items() if now - t > grace_s]:
                del built_at[fid]
            return ids - built_at.keys()

    MediaFileManager.execute_deferred = execute_deferred
    MediaFileManager._get_inactive_file_ids = get_inactive_file_ids
    MediaFileManager._click_files_kept = True
