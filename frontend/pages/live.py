"""Page: the live pair (run by ``st.navigation`` in ``frontend.dashboard.main``)."""

from frontend.dashboard import live_page

live_page()
