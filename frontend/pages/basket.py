"""Page: a basket of 3-4 symbols (run by ``st.navigation`` in ``frontend.shell.main``)."""

from frontend.basket import basket_page
from frontend.controls import execution_settings, refresh_s
from frontend.shell import session_engine

basket_page(session_engine(), execution_settings, refresh_s)
