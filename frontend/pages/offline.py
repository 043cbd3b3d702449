"""Page: offline analysis of uploaded bars or trades (run by ``st.navigation``)."""

from frontend.dashboard import offline_page

offline_page()
