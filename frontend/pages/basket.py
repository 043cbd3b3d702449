"""Page: a basket of 3-4 symbols (run by ``st.navigation`` in ``frontend.dashboard.main``)."""

from frontend.basket import basket_page
from frontend.dashboard import execution_settings, refresh_s, session_engine

basket_page(session_engine(), execution_settings, refresh_s)
