"""Page: alert rules, their states and history (run by ``st.navigation`` in
``frontend.shell.main``)."""

from frontend.alerts_view import alerts_page
from frontend.shell import session_engine

alerts_page(session_engine())
