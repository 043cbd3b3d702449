"""Files built at a click outlive Streamlit's clean-up long enough to be fetched."""

from __future__ import annotations

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.media_file_storage import MediaFileStorageError
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from frontend.downloads import keep_click_built_files


def _click(manager: MediaFileManager, body: bytes) -> str:
    """What a click on a download button with a callable ``data`` does: the file's id."""
    placeholder = manager.add_deferred(lambda: body, "text/csv", "1.2.3", file_name="bars.csv")
    url = manager.execute_deferred(placeholder)
    return url.rsplit("/", 1)[-1].split(".", 1)[0]


def test_a_click_built_file_survives_script_runs_ending():
    keep_click_built_files()
    storage = MemoryMediaFileStorage("/media")
    manager = MediaFileManager(storage)
    file_id = _click(manager, b"symbol,close\nBTCUSDT,1\n")
    for _ in range(10):  # ten script runs end before the browser fetches it
        manager.remove_orphaned_files()
    assert storage.get_file(file_id).content == b"symbol,close\nBTCUSDT,1\n"


def test_files_not_built_at_a_click_are_still_collected():
    keep_click_built_files()
    storage = MemoryMediaFileStorage("/media")
    manager = MediaFileManager(storage)
    with manager._lock:  # a downloadable file no element refers to any more
        from streamlit.runtime.media_file_manager import MediaFileKind, MediaFileMetadata

        file_id = storage.load_and_get_id(b"old", "text/csv", MediaFileKind.DOWNLOADABLE, "x.csv")
        manager._file_metadata[file_id] = MediaFileMetadata(kind=MediaFileKind.DOWNLOADABLE)
    manager.remove_orphaned_files()
    manager.remove_orphaned_files()
    with pytest.raises(MediaFileStorageError):
        storage.get_file(file_id)
