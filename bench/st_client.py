"""One browser session of a running Streamlit app, without the browser: for load tests.

A browser talks to `streamlit run` through one websocket (/_stcore/stream): it sends BackMsg
protobufs ("run the script with these widget values") and receives ForwardMsg protobufs (the
elements of each script run, then "script finished"). This client speaks the same protocol, so
each instance is a real session of the real server (its own session state and script thread)
at a small fraction of a headless browser's CPU. After each interaction it keeps what a browser
would show: the elements of the last script run, by position (delta path).

Why not AppTest threads: `AppTest.run()` sets and then clears the process-wide
`Runtime._instance`, so concurrent AppTests break each other's script runs
("Runtime hasn't been created!"); AppTest is a one-session-at-a-time harness.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

DeltaPath = tuple[int, ...]


@dataclass
class Screen:
    """The page after an interaction, what went wrong while it ran, and when watched elements appeared."""

    elements: dict[DeltaPath, Any]  # delta path -> Element proto, for the last script run
    seconds: float  # from sending the interaction to the end of its last script run
    errors: list[str] = field(default_factory=list)  # exceptions and st.error boxes of every run in it
    first_seen: dict[str, float] = field(default_factory=dict)  # html prefix -> seconds until one arrived
    run_ends: list[float] = field(default_factory=list)  # seconds until each script run in it finished

    def html(self) -> list[tuple[DeltaPath, str]]:
        """Every st.html body, in page order."""
        return sorted((path, el.html.body) for path, el in self.elements.items() if el.WhichOneof("type") == "html")

    def widgets(self, kind: str) -> list[tuple[DeltaPath, Any]]:
        return sorted((path, getattr(el, kind)) for path, el in self.elements.items() if el.WhichOneof("type") == kind)


class Session:
    """`async with Session(url) as s: await s.load(); await s.chat("...")`: one user's tab."""

    def __init__(self, url: str, timeout_s: float = 90.0):
        self.url = url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.timeout_s = timeout_s
        self._ws: Any = None
        self._page = ""  # the page script hash the browser is on; "" = the default page
        self.screen: Screen | None = None

    async def open(self) -> None:
        # No keep-alive pings: a browser sends none, and a late pong under load must not end the test.
        self._ws = await websockets.connect(
            self.url, subprotocols=["streamlit"], max_size=None, ping_interval=None, open_timeout=self.timeout_s
        )

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def load(self) -> Screen:
        """Open the app, as a browser does on arrival."""
        return await self._run([])

    async def chat(self, text: str, watch: tuple[str, ...] = ()) -> Screen:
        """Type `text` into the page's chat input and press Enter."""
        state = WidgetState(id=self._widget_id("chat_input"))
        state.chat_input_value.data = text
        return await self._run([state], watch)

    async def click(self, label: str) -> Screen:
        return await self._run([WidgetState(id=self._widget_id("button", label), trigger_value=True)])

    def _widget_id(self, kind: str, label: str | None = None) -> str:
        assert self.screen is not None, "load() the page first"
        for _, widget in self.screen.widgets(kind):
            if label is None or widget.label == label:
                return widget.id
        raise LookupError(f"no {kind} {label or ''} on the page")

    async def _run(self, widgets: list[WidgetState], watch: tuple[str, ...] = ()) -> Screen:
        back = BackMsg()
        back.rerun_script.page_script_hash = self._page
        back.rerun_script.widget_states.widgets.extend(widgets)
        started = time.perf_counter()
        await self._ws.send(back.SerializeToString())
        screen = Screen(elements={}, seconds=0.0)
        while True:
            left = self.timeout_s - (time.perf_counter() - started)
            raw = await asyncio.wait_for(self._ws.recv(), timeout=max(left, 0.01))
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "new_session":  # a script run starts: the page is drawn again from the top
                screen.elements = {}
            elif kind == "navigation":
                self._page = msg.navigation.page_script_hash
            elif kind == "delta":
                self._apply(msg, screen, watch, time.perf_counter() - started)
            elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
                screen.errors.append(f"script does not compile: {msg.session_event.script_compilation_exception.message}")
            elif kind == "ref_hash":  # a cached element this client cannot show
                screen.errors.append("the server referred to a cached message")
            elif kind == "script_finished":
                screen.run_ends.append(time.perf_counter() - started)
                if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue  # st.rerun(): the next run follows at once
                if msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    screen.errors.append("script finished with a compile error")
                screen.seconds = time.perf_counter() - started
                self.screen = screen
                return screen

    @staticmethod
    def _apply(msg: ForwardMsg, screen: Screen, watch: tuple[str, ...], at: float) -> None:
        path = tuple(msg.metadata.delta_path)
        # An element or block replaces whatever was at its place, children included (st.empty, streaming).
        for old in [p for p in screen.elements if p[: len(path)] == path]:
            del screen.elements[old]
        if msg.delta.WhichOneof("type") != "new_element":
            return
        element = msg.delta.new_element
        screen.elements[path] = element
        kind = element.WhichOneof("type")
        if kind == "exception":
            screen.errors.append(f"exception on the page: {element.exception.type}: {element.exception.message}")
        elif kind == "alert" and element.alert.format == Alert.ERROR:
            screen.errors.append(f"error on the page: {element.alert.body}")
        elif kind == "html":
            for prefix in watch:
                if element.html.body.startswith(prefix):
                    screen.first_seen.setdefault(prefix, at)
