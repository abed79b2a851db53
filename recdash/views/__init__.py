"""Pure view logic for the pages: the tables, figures, texts and form helpers they show, built from recdash's
core (no Streamlit here: pages lay these out; everything here is tested on plain frames)."""
