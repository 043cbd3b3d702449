"""Page: the pair scanner (run by ``st.navigation`` in ``frontend.dashboard.main``)."""

from frontend.dashboard import session_engine
from frontend.scanner import scanner_page

scanner_page(session_engine())
