"""Page: the pair scanner (run by ``st.navigation`` in ``frontend.shell.main``)."""

from frontend.scanner import scanner_page
from frontend.shell import session_engine

scanner_page(session_engine())
