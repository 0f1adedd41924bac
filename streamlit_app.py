"""kb's web app: Chat (the default), Upload, Documents and Admin pages over the `kb` library.

This file only sets up the page frame and the navigation; every page calls `kb/` through
`app_pages/common.py` and holds no retrieval, parsing or storage logic of its own.
"""

import streamlit as st

from kb.errors import KbError, first_line

# Nothing heavy is imported before the navigation is drawn: app_pages.common imports the whole library
# (4-5 s on the first run after a start), and until this script sends its first element the browser shows
# a blank page (or, were there a `pages/` folder, Streamlit's automatic list of every script in it).

# Our own classes only: passage and answer text is escaped before it reaches any HTML (kb/highlight.py).
STYLE = """<style>
.kb-card-head { font-size: 0.85rem; color: #444; margin-bottom: 0.25rem; }
.kb-card-head b { color: #1f4e9c; }
.kb-passage { white-space: pre-wrap; font-size: 0.88rem; line-height: 1.45; max-height: 15rem; overflow-y: auto; }
.kb-passage .kb-table { border-collapse: collapse; white-space: normal; margin: 0.3rem 0; font-size: 0.84rem; }
.kb-passage .kb-table td, .kb-passage .kb-table th { border: 1px solid #e5e7eb; padding: 0.1rem 0.35rem; text-align: left; }
.kb-passage .kb-table tr.kb-support { background: #fef9c3; }
.kb-passage mark { background: #fde68a; padding: 0 0.1rem; border-radius: 2px; }
.kb-passage .kb-support { background: #fef9c3; box-shadow: inset 3px 0 0 #d97706; padding-left: 0.2rem; }
.kb-card-meta { font-size: 0.8rem; color: #6b7280; margin-bottom: 0.25rem; }
.kb-card-warn { font-size: 0.82rem; color: #92400e; background: #fffbeb; border-left: 3px solid #d97706;
  padding: 0.15rem 0.4rem; margin-bottom: 0.3rem; }
.kb-whole { font-size: 0.82rem; color: #6b7280; margin-top: 0.3rem; }
.kb-whole .kb-passage { color: #1f2937; }
.kb-unsupported { text-decoration: underline wavy #d97706; text-underline-offset: 3px; }
.kb-flag { font-size: 0.8rem; color: #92400e; background: #fffbeb; border-radius: 3px; padding: 0 0.3rem; margin: 0 0.3rem; }
.kb-answer { white-space: pre-wrap; line-height: 1.55; }
.kb-answer b { color: #1f4e9c; }
.kb-question { white-space: pre-wrap; }
.kb-note { color: #6b7280; font-size: 0.85rem; margin: 0; }
</style>"""


def main() -> None:
    st.set_page_config(page_title="kb: ask your company's files", page_icon=":material/menu_book:", layout="wide")
    st.html(STYLE)
    navigation = st.navigation(
        [
            st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:", default=True),
            st.Page("app_pages/upload.py", title="Upload", icon=":material/upload_file:"),
            st.Page("app_pages/documents.py", title="Documents", icon=":material/description:"),
            st.Page("app_pages/admin.py", title="Admin", icon=":material/admin_panel_settings:"),
        ]
    )
    with st.spinner("Opening the knowledge base…"):  # the first run after a start imports the library
        from app_pages.common import current_actor, note, oidc_configured  # after the navigation: see above

    if oidc_configured():
        with st.sidebar:
            if st.user.get("is_logged_in"):
                note(f"Signed in as {current_actor().name}")
                st.button("Log out", on_click=st.logout, icon=":material/logout:")
            else:
                st.button("Log in", on_click=st.login, icon=":material/login:")
    try:
        navigation.run()
    except (KbError, OSError) as exc:  # the one place a page's unhandled user-facing error is shown
        st.error(first_line(exc), icon=":material/error:")


if __name__ == "__main__":
    main()
