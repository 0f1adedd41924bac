"""Many people asking questions in the real app while files are ingested and the index is rebuilt.

    .venv/bin/python bench/load.py [--users 20] [--seconds 120] [--think 1.0] [--turns 5]

Half of the 18F handbook's pages are ingested into a temporary data directory; `streamlit run
streamlit_app.py` serves it on a free port of 127.0.0.1 with the repository's .streamlit/config.toml
and no secrets (offline: extractive answers, keyword search). Each user is one real session of that
server, driven over its websocket the way a browser drives it (bench/st_client.py): it opens the
Chat page, then until the time is up types a handbook question, waits for the finished answer,
pauses 0-2x`--think` seconds, and after `--turns` questions presses "New conversation".
`--ingest-after` seconds into the window, the other half of the pages and the handbook's downloads
(Word, PDF) are queued through the library as `kb ingest` does, and right behind them a re-index as
the local admin (`kb reindex`); the app's worker does them in order. When each starts, when the new
index is swapped in and when each ends are read from the catalog while the users ask.

Every answer is checked as a reader would: no exception or error box on the page; the page shows
the question that was asked and every earlier turn; one passage card per distinct marker [n] (or,
when the documents do not say, numbered closest passages) and one "Original file" button per card;
each card's document is in the catalog and served. After the load, with the app stopped, every
cited passage is looked up in the final index: a current chunk of that document with exactly the
text shown. Latency is from pressing Enter to the end of the last script run (the answer in the
conversation, with its feedback buttons); "first passage" is when the first card arrived.
Results: printed, and bench/results/load.json. The temporary directory is removed at the end.
`--app-option NAME=VALUE` passes a Streamlit option to this run only, to measure a configuration
change (e.g. runner.postScriptGC=false) before making it.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HANDBOOKS, PYTHON, percentiles, save, table  # noqa: E402
from st_client import Screen, Session  # noqa: E402

from kb.auth import LOCAL_ADMIN  # noqa: E402
from kb.config import load_settings  # noqa: E402
from kb.service import KnowledgeBase  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HANDBOOK = HANDBOOKS / "18f-handbook"
QUESTIONS = [
    "How do I request annual leave?",
    "What is the per diem when I travel?",
    "How do I book travel in Concur?",
    "How are travel expenses reimbursed?",
    "Who approves overtime?",
    "How much paid parental leave do I get?",
    "How does FMLA leave work?",
    "Can I get advanced sick leave?",
    "How do I donate leave through the voluntary leave transfer program?",
    "What should I do before going out of office?",
    "How do I get my PIV card?",
    "What equipment does a new employee get?",
    "How do I log in on my first day?",
    "How do I submit my time in Tock?",
    "How do I report a security incident?",
    "What are the password requirements?",
    "How do I request a reasonable accommodation?",
    "What is the transit benefit?",
    "What work schedules can I choose?",
    "How do I add a Slack integration?",
    "How do I get access to the GitHub organization?",
    "What does the code of conduct say about harassment?",
    "How do I make a purchase request?",
    "How should I handle sensitive information?",
    "How do promotions work?",
    "What do I need to do when I leave TTS?",
    "How do I request a term extension?",
    "How do I sign my git commits?",
    "How do I get approval to speak at a conference?",
    "What is the open source policy?",
    "How do I update the handbook?",
    "What is an individual development plan?",
]
CARD = '<div class="kb-card"'
CARD_FORM = re.compile(
    r'<div class="kb-card" data-n="(\d+)"><div class="kb-card-head"><b>\[\d+\]</b> (.*?) · score -?[\d.]+</div>'
    r'<div class="kb-passage">(.*)</div></div>\Z', re.DOTALL,
)
MARKER = re.compile(r"<b>\[(\d+)\]</b>")
POLL_S = 0.25
FAILURES = (TimeoutError, websockets.ConnectionClosed, OSError, LookupError)  # an interaction that did not finish


@dataclass(frozen=True)
class Card:
    """A passage card as the page shows it: its number, its head (file · page · section) and its text."""

    n: int
    source: str
    head: str
    text: str


@dataclass
class Asked:
    """One question: when it was asked (s into the window), how long it took, and what was wrong."""

    user: int
    at: float
    seconds: float
    first_passage: float | None = None  # the first card arrived
    streamed: float | None = None  # the answer was written (then st.rerun draws the conversation again)
    cards: list[Card] = field(default_factory=list)
    found: bool = True
    problems: list[str] = field(default_factory=list)


@dataclass
class Timeline:
    """Seconds into the load window at which the background jobs reached each stage."""

    events: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def mark(self, name: str, at: float) -> None:
        self.events.setdefault(name, round(at, 1))


# --- setup ----------------------------------------------------------------------------------


def stage_handbook(root: Path) -> tuple[Path, Path]:
    """Copy the handbook into two folders: every other page in the first; the rest and the downloads
    in the second. A folder's files are named by their path inside it, as `kb ingest FOLDER` does."""
    first, second = root / "handbook-1", root / "handbook-2"
    pages = sorted((HANDBOOK / "pages").rglob("*.md"))
    downloads = sorted(p for p in (HANDBOOK / "downloads").rglob("*") if p.is_file())
    placed = [(first if i % 2 == 0 else second, path) for i, path in enumerate(pages)]
    for folder, path in placed + [(second, path) for path in downloads]:
        target = folder / path.relative_to(HANDBOOK)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return first, second


def app_environment(data: Path) -> dict[str, str]:
    """The offline defaults: no KB_* or OPENAI_* setting from the caller's environment leaks in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "OPENAI_"))}
    return {**clean, "KB_DATA_DIR": str(data), "KB_SECRETS_FILE": os.devnull}  # no secrets file either


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(root: Path, env: dict[str, str], options: list[str]) -> tuple[subprocess.Popen, str]:
    """`streamlit run` on 127.0.0.1 only, with the repository's config.toml (plus `options`, NAME=VALUE)
    and no secrets file."""
    (root / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", root / ".streamlit" / "config.toml")
    port = free_port()
    with open(root / "streamlit.log", "w") as log:
        server = subprocess.Popen(
            [PYTHON, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1",
             *[f"--{option}" for option in options]],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited at start:\n{(root / 'streamlit.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return server, url
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError("the app did not answer /_stcore/health within 120 s")


def stop_app(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- checking an answer ---------------------------------------------------------------------


def read_cards(bodies: list[str]) -> tuple[list[Card], list[str]]:
    cards, problems = [], []
    for body in bodies:
        match = CARD_FORM.match(body)
        if match is None:
            problems.append(f"a card not in the expected form: {body[:120]!r}")
            continue
        n, head, passage = match.groups()
        text = html.unescape(re.sub(r"</?mark>", "", passage))  # the text is escaped; <mark> is kb's own
        cards.append(Card(int(n), html.unescape(head.split(" · ")[0]), head, text))
    return cards, problems


def check_answer(screen: Screen, question: str, turns: int) -> tuple[list[Card], bool, list[str]]:
    """(the last answer's cards, whether the documents held an answer, what is wrong with the page)."""
    problems = list(screen.errors)
    bodies = screen.html()
    asked = [body for _, body in bodies if body.startswith('<div class="kb-question">')]
    answers = [(path, body) for path, body in bodies if body.startswith('<div class="kb-answer">')]
    if len(asked) != turns or len(answers) != turns:
        problems.append(f"{turns} turns expected; the page shows {len(asked)} questions, {len(answers)} answers")
    if not answers:
        return [], False, problems + ["no answer on the page"]
    if asked and asked[-1] != f'<div class="kb-question">{html.escape(question)}</div>':
        problems.append(f"the last question on the page is not the one asked: {asked[-1][:120]!r}")
    answer_path, answer = answers[-1]
    turn = answer_path[:2]  # the assistant's chat message that holds this answer and its cards
    cards, bad = read_cards([b for p, b in bodies if p > answer_path and p[:2] == turn and b.startswith(CARD)])
    problems += bad
    numbers = [card.n for card in cards]
    markers = sorted({int(n) for n in MARKER.findall(answer)})
    found = bool(markers)
    if found and numbers != markers:
        problems.append(f"markers {markers} but cards {numbers}")
    if not found:
        closest = any("Closest passages" in b for p, b in bodies if p[:2] == turn)
        if numbers != list(range(1, len(cards) + 1)) or (cards and not closest):
            problems.append(f"no markers, and cards {numbers} are not the numbered closest passages")
    buttons = [w for p, w in screen.widgets("download_button") if p[:2] == turn and w.label == "Original file"]
    if len(buttons) != len(cards):
        problems.append(f"{len(buttons)} 'Original file' buttons for {len(cards)} cards")
    return cards, found, problems


def served_in_catalog(kb: KnowledgeBase, cards: list[Card]) -> list[str]:
    """While the app runs: each card's document must be in the catalog and served."""
    problems = []
    for card in cards:
        doc = next(iter(kb.catalog.named(card.source)), None)
        if doc is None or doc.status != "ok" or doc.version < 1:
            problems.append(f"card [{card.n}] cites {card.source!r}, which the catalog does not serve")
    return problems


def resolve(kb: KnowledgeBase, cards: set[Card]) -> list[Card]:
    """After the load: the cards whose text is not a current chunk of their document in the index."""
    unresolved = []
    for card in sorted(cards, key=lambda c: (c.source, c.text)):
        doc = next(iter(kb.catalog.named(card.source)), None)
        hits = kb.search(card.text, k=100, doc_ids=[doc.doc_id], actor=LOCAL_ADMIN) if doc else []
        if not any(
            hit.chunk.text == card.text and (not hit.chunk.section or f"§ {html.escape(hit.chunk.section)}" in card.head)
            for hit in hits
        ):
            unresolved.append(card)
    return unresolved


# --- the load -------------------------------------------------------------------------------


class Load:
    def __init__(self, url: str, kb: KnowledgeBase, app: psutil.Process, args: argparse.Namespace):
        self.url, self.kb, self.app, self.args = url, kb, app, args
        self.asked: list[Asked] = []
        self.failures: list[dict[str, Any]] = []  # interactions that did not finish (timeouts, lost connections)
        self.page_loads: list[float] = []
        self.timeline = Timeline()
        self.usage: dict[str, Any] = {}
        self.started = self.deadline = self.window = 0.0

    def now(self) -> float:
        return time.monotonic() - self.started

    def failed(self, user: int, what: str, errors: list[str]) -> None:
        at = round(self.now(), 1) if self.started else None
        self.failures.append({"user": user, "at": at, "what": what, "errors": errors})

    async def open_tab(self, user: int) -> Session | None:
        """Open the app in a new tab (a new session); None if that failed."""
        session = Session(self.url, self.args.timeout)
        try:
            await session.open()
            screen = await session.load()
        except FAILURES as exc:
            self.failed(user, f"opening the app: {type(exc).__name__}", [str(exc)[:300]])
            await session.close()
            return None
        self.page_loads.append(screen.seconds)
        if screen.errors:
            self.failed(user, "page load", screen.errors)
        return session

    async def user(self, n: int, session: Session | None) -> None:
        """One person asking until the time is up; after a failure, they come back in a new tab."""
        rng = random.Random(n)
        while time.monotonic() < self.deadline:
            if session is None:
                await asyncio.sleep(1)
                session = await self.open_tab(n)
                continue
            try:
                await self.converse(n, session, rng)
            except FAILURES as exc:
                self.failed(n, type(exc).__name__, [str(exc)[:300]])
                await session.close()
                session = None
        if session is not None:
            await session.close()

    async def converse(self, n: int, session: Session, rng: random.Random) -> None:
        turns = 0
        while time.monotonic() < self.deadline:
            if turns == self.args.turns:
                screen = await session.click("New conversation")
                turns = 0
                left = [b for _, b in screen.html() if b.startswith('<div class="kb-question">')]
                if screen.errors or left:
                    self.failed(n, "new conversation", screen.errors + [f"{len(left)} questions left"] * bool(left))
            question = rng.choice(QUESTIONS)
            at = self.now()
            screen = await session.chat(question, watch=(CARD,))
            turns += 1
            cards, found, problems = check_answer(screen, question, turns)
            problems += served_in_catalog(self.kb, cards)
            written = screen.run_ends[0] if len(screen.run_ends) > 1 else None  # the run that wrote the answer
            self.asked.append(Asked(n, at, screen.seconds, screen.first_seen.get(CARD), written, cards, found, problems))
            await asyncio.sleep(rng.uniform(0, 2 * self.args.think))

    async def jobs(self, second_half: Path) -> None:
        """Queue the ingest and, behind it, the re-index; note when each starts, swaps in and ends."""
        await asyncio.sleep(self.args.ingest_after)
        catalog = self.kb.catalog
        self.timeline.mark("ingest queued", self.now())
        ids = [s.job_id for s in await asyncio.to_thread(self.kb.submit_paths, [second_half])]
        before = catalog.get_meta("last_reindex")
        reindex = self.kb.submit_reindex(LOCAL_ADMIN)  # the queue is worked in order: it runs after the files
        self.timeline.mark("re-index queued", self.now())
        self.timeline.notes["ingest_files"] = len(ids)
        hard_stop = self.deadline + self.args.job_grace
        while time.monotonic() < hard_stop:
            jobs = catalog.jobs(ids)
            (job,) = catalog.jobs([reindex])
            if any(j.status != "queued" for j in jobs):
                self.timeline.mark("ingest started", self.now())
            if all(j.status == "done" for j in jobs) and "ingest finished" not in self.timeline.events:
                self.timeline.mark("ingest finished", self.now())
                outcomes = [j.outcome for j in jobs]
                self.timeline.notes["ingest_outcomes"] = {o: outcomes.count(o) for o in sorted(set(outcomes))}
                self.timeline.notes["ingest_failures"] = [f"{j.name}: {j.message}" for j in jobs if j.outcome == "failed"]
            if job.status != "queued":
                self.timeline.mark("re-index started", self.now())
            if catalog.get_meta("last_reindex") != before:
                self.timeline.mark("re-index swapped in", self.now())
            if job.status == "done":
                self.timeline.mark("re-index finished", self.now())
                self.timeline.notes["reindex"] = f"{job.outcome}: {job.message}"
                return
            await asyncio.sleep(POLL_S)

    async def run(self, second_half: Path) -> None:
        """Everyone opens the app; then the window starts: questions, and the jobs in the background."""
        tabs = await asyncio.gather(*(self.open_tab(n) for n in range(self.args.users)))
        self.started = time.monotonic()
        self.deadline = self.started + self.args.seconds
        app_cpu, client_cpu = cpu_seconds(self.app), time.process_time()  # the app is our child: not ours
        psutil.cpu_percent()
        peak, stop = [0.0], asyncio.Event()
        memory = asyncio.create_task(watch_memory(self.app, peak, stop))
        jobs = asyncio.create_task(self.jobs(second_half))
        await asyncio.gather(*(self.user(n, tab) for n, tab in enumerate(tabs)))
        self.window = self.now()
        self.usage = {
            "cpu_percent": round((cpu_seconds(self.app) - app_cpu) / self.window * 100),
            "machine_cpu_percent": psutil.cpu_percent(),
            "client_cpu_s": round(time.process_time() - client_cpu, 1),
        }
        stop.set()
        await memory
        self.usage["peak_rss_mb"] = round(peak[0])
        await jobs


# --- report ---------------------------------------------------------------------------------


def latency(seconds: list[float]) -> dict[str, float | None]:
    ms = [s * 1000 for s in seconds]
    if len(ms) < 2:
        return {"p50": round(ms[0], 1) if ms else None, "p95": None, "max": round(max(ms), 1) if ms else None}
    return {**{k: round(v, 1) for k, v in percentiles(ms).items()}, "max": round(max(ms), 1)}


def phase_of(at: float, events: dict[str, float]) -> str:
    """Which background work was going on when a question was asked."""
    ingest = events.get("ingest started", events.get("ingest queued", float("inf")))
    reindex = events.get("re-index started", float("inf"))
    finished = events.get("re-index finished", float("inf"))
    if at < ingest:
        return "1 before ingest"
    if at < reindex:
        return "2 ingest"
    if at < finished:
        return "3 re-index"
    return "4 after re-index"


def summarise(load: Load, unresolved: list[Card], cited: set[Card], server: dict, args: argparse.Namespace) -> dict:
    asked = load.asked
    answered = [a for a in asked if not a.problems]
    events = load.timeline.events
    phases = {}
    for name in sorted({phase_of(a.at, events) for a in asked}):
        inside = [a.seconds for a in asked if phase_of(a.at, events) == name]
        phases[name[2:]] = {"questions": len(inside), **latency(inside)}
    swap = events.get("re-index swapped in")
    return {
        "command": " ".join(["bench/load.py", *sys.argv[1:]]),
        "users": args.users, "seconds": args.seconds, "think_mean_s": args.think, "turns_per_conversation": args.turns,
        "app_options": args.app_option,
        "window_s": round(load.window, 1),
        "questions_asked": len(asked), "answered_without_problems": len(answered),
        "questions_per_s": round(len(asked) / load.window, 2) if load.window else None,
        "answers_not_found": sum(not a.found for a in asked),
        "errors": len(asked) - len(answered) + len(load.failures),
        "problems": [{"user": a.user, "at": round(a.at, 1), "problems": a.problems} for a in asked if a.problems][:20],
        "failures": load.failures[:20],
        "cards_checked": sum(len(a.cards) for a in asked), "distinct_passages_cited": len(cited),
        "unresolved_citations": len(unresolved),
        "unresolved_examples": [{"source": c.source, "head": c.head, "text": c.text[:200]} for c in unresolved[:5]],
        "latency_ms": latency([a.seconds for a in asked]),
        "first_passage_ms": latency([a.first_passage for a in asked if a.first_passage is not None]),
        "answer_written_ms": latency([a.streamed for a in asked if a.streamed is not None]),
        "page_load_ms": latency(load.page_loads),
        "by_phase_ms": phases,
        "jobs": {**events, **load.timeline.notes},
        "reindex_swapped_in_window": swap is not None and swap <= load.window,
        "server": server,
    }


def print_report(result: dict) -> None:
    lat = result["latency_ms"]
    print(table(
        ["users", "seconds", "asked", "answered ok", "errors", "unresolved citations", "p50 ms", "p95 ms", "max ms"],
        [[result["users"], result["window_s"], result["questions_asked"], result["answered_without_problems"],
          result["errors"], result["unresolved_citations"], lat["p50"], lat["p95"], lat["max"]]],
    ))
    print()
    print(table(["while", "questions", "p50 ms", "p95 ms", "max ms"],
                [[name, p["questions"], p["p50"], p["p95"], p["max"]] for name, p in result["by_phase_ms"].items()]))
    print()
    jobs = result["jobs"]
    print(table(["background job", "s into the window"],
                [[k, v] for k, v in jobs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]))
    print(f"ingest: {jobs.get('ingest_files')} files, {jobs.get('ingest_outcomes')}; re-index: {jobs.get('reindex')}; "
          f"swapped in inside the window: {result['reindex_swapped_in_window']}")
    first, written = result["first_passage_ms"], result["answer_written_ms"]
    print(f"first passage p50/p95: {first['p50']}/{first['p95']} ms; answer written (before the redraw) "
          f"p50/p95: {written['p50']}/{written['p95']} ms")
    print(f"page load p50/p95: {result['page_load_ms']['p50']}/{result['page_load_ms']['p95']} ms; "
          f"{result['questions_per_s']} questions/s; {result['answers_not_found']} answers 'the documents do not say'")
    print(f"cards checked: {result['cards_checked']} ({result['distinct_passages_cited']} distinct passages)")
    server = result["server"]
    print(f"app process: {server['cpu_percent'] / 100:.2f} of {psutil.cpu_count()} cores busy over the window, "
          f"peak RSS {server['peak_rss_mb']} MB; whole machine {server['machine_cpu_percent']}% CPU; "
          f"load client {server['client_cpu_s']} CPU s; app log errors: {len(server['log_errors'])}")
    if not result["reindex_swapped_in_window"]:
        print("WARNING: the re-index did not swap in inside the window: the machine is too busy for these jobs "
              "to fit; run again with a longer --seconds")
    for item in (result["problems"] + result["failures"])[:10]:
        print("  problem:", item)


# --- main -----------------------------------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of the app with its children (the parse helper)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def watch_memory(process: psutil.Process, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            return
        await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the users keep asking")
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between a user's questions (s)")
    parser.add_argument("--turns", type=int, default=5, help="questions per conversation before 'New conversation'")
    parser.add_argument("--ingest-after", type=float, default=5.0, help="s into the window the ingest is queued")
    parser.add_argument("--app-option", action="append", default=[], metavar="NAME=VALUE",
                        help="a Streamlit option for this run only, e.g. runner.postScriptGC=false (repeatable)")
    parser.add_argument("--timeout", type=float, default=90.0, help="s one interaction may take before it counts as failed")
    parser.add_argument("--job-grace", type=float, default=600.0, help="s after the window to let the jobs finish")
    args = parser.parse_args()
    if args.users < 1 or args.seconds <= 0 or args.turns < 1:
        parser.error("--users and --turns must be at least 1 and --seconds positive")

    load_before = [round(x, 2) for x in psutil.getloadavg()]  # the machine may be busy with other work
    root = Path(tempfile.mkdtemp(prefix="kb-bench-load-"))
    server = None
    try:
        first_half, second_half = stage_handbook(root)
        env = app_environment(root / "data")
        settings = load_settings(env=env, secrets_file=root / "no-secrets.toml")
        started = time.perf_counter()
        kb = KnowledgeBase(settings)
        kb.submit_paths([first_half])
        kb.work_queue()
        docs = [d for d in kb.documents(actor=LOCAL_ADMIN) if d.status == "ok"]
        print(f"preloaded {len(docs)} documents, {kb.index.count()} chunks in {time.perf_counter() - started:.1f} s")
        kb.close()

        server, url = start_app(root, env, args.app_option)
        print(f"app on {url} (pid {server.pid}); {args.users} users for {args.seconds:g} s")
        submitter = KnowledgeBase(settings)  # queues work for the app's worker, as `kb ingest` does
        load = Load(url, submitter, psutil.Process(server.pid), args)
        try:
            asyncio.run(load.run(second_half))
        finally:
            submitter.close()
            stop_app(server)
        usage = {**load.usage, "load_average_before": load_before}
        log = (root / "streamlit.log").read_text(errors="replace")
        usage["log_errors"] = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line][:20]

        cited = {card for a in load.asked for card in a.cards}
        kb = KnowledgeBase(settings)
        try:
            kb.open_index()
            unresolved = resolve(kb, cited)
            usage["final_index"] = {"documents": sum(d.status == "ok" for d in kb.documents(actor=LOCAL_ADMIN)),
                                    "chunks": kb.index.count()}
        finally:
            kb.close()
        result = summarise(load, unresolved, cited, usage, args)
        print_report(result)
        name = "load" + "".join(f"_{option.replace('=', '-')}" for option in args.app_option)  # the app as shipped: load
        print(f"\nwrote {save(name, result)}")
    finally:
        if server is not None:
            stop_app(server)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
