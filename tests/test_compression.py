"""The first page, /config and /gradio_api/info reach the browser compressed; nothing else changes.

Through the real launch path (app.launch): the page a learner downloads must be the same
bytes once decoded, streamed results (quiz grading over the queue's event stream) must
still arrive, and a client that asks for no compression still gets a plain page.
"""
from __future__ import annotations

import socket

import brotli
import httpx
import pytest
from gradio_client import Client

from quizzes import grading


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    import app

    mp = pytest.MonkeyPatch()
    mp.setenv("FTLAB_DATA_DIR", str(tmp_path_factory.mktemp("ftlab")))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_app()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield url.rstrip("/")
    demo.close()
    mp.undo()


@pytest.mark.parametrize("path", ["/", "/config", "/gradio_api/info"])
def test_first_page_parts_are_compressed_and_decode_to_the_same_bytes(url, path):
    with httpx.Client(timeout=60) as http:
        plain = http.get(url + path, headers={"Accept-Encoding": "identity"})
        br = http.get(url + path, headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
        gz = http.get(url + path, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == br.status_code == gz.status_code == 200
    assert "content-encoding" not in plain.headers
    assert br.headers["content-encoding"] == "br" and gz.headers["content-encoding"] == "gzip"
    assert br.content == gz.content == plain.content  # httpx decodes both
    assert br.num_bytes_downloaded < len(plain.content) / 4
    assert brotli.decompress(_raw(url + path, "br")) == plain.content


def _raw(full_url: str, encoding: str) -> bytes:
    """The body exactly as it came over the wire (not decoded)."""
    with httpx.Client(timeout=60) as http, http.stream("GET", full_url, headers={"Accept-Encoding": encoding}) as r:
        return b"".join(r.iter_raw())


def test_queued_results_still_stream_back(url):
    quiz = grading.load_quiz("lesson1")
    answers = [next(o["text"] for o in q["options"] if o["correct"]) for q in quiz["questions"]]
    feedback, progress, _ = Client(url, verbose=False).predict(None, *answers, api_name="/submit_lesson1")
    assert "Score: 4/4" in feedback and progress["best"] == {"lesson1": 4}
