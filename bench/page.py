"""The first page's weight: HTML + /config + /gradio_api/info, the app vs bare Gradio (bench/bare.py).

Both servers are started the way they run (the app through app.launch); each part is
fetched once with a browser's Accept-Encoding ("gzip, deflate, br, zstd") and once asking
for no compression. Bytes on the wire are what a learner downloads; raw bytes are what
the server builds and what the browser parses. The bare app's rows use Gradio's default
serving; a last row says what the bare page would weigh with the same compression, so the
ratio that compression buys is not mistaken for a lighter page.
"""
from __future__ import annotations

from bench.common import Row, ratio

PARTS = ("/", "/config", "/gradio_api/info")
BROWSER = {"Accept-Encoding": "gzip, deflate, br, zstd"}
RAW = {"Accept-Encoding": "identity"}


def _kb(n: float) -> str:
    return f"{n / 1024:.0f} KB"


def fetch(url: str) -> dict:
    import httpx

    out = {}
    with httpx.Client(timeout=120) as http:
        for part in PARTS:
            wire = http.get(url + part, headers=BROWSER)
            raw = http.get(url + part, headers=RAW)
            wire.raise_for_status()
            raw.raise_for_status()
            assert wire.content == raw.content, f"{part}: compressed body differs from the raw one"
            out[part] = {"wire": wire.num_bytes_downloaded, "raw": len(raw.content),
                         "encoding": wire.headers.get("content-encoding", "none"), "body": raw.content}
    return out


def measure(side: str) -> dict:
    from bench.load import start_server, stop_server

    proc, url = start_server(side, -1)
    try:
        return fetch(url)
    finally:
        stop_server(proc)


def run(quick_mode: bool | None = None) -> list[Row]:
    from core.compression import BROTLI_QUALITY
    import brotli

    ours, bare = measure("app"), measure("bare")
    wire_o, wire_b = sum(p["wire"] for p in ours.values()), sum(p["wire"] for p in bare.values())
    raw_o, raw_b = sum(p["raw"] for p in ours.values()), sum(p["raw"] for p in bare.values())
    bare_br = sum(len(brotli.compress(p["body"], quality=BROTLI_QUALITY)) for p in bare.values())
    rows = [Row("page: first page on the wire (HTML + /config + /gradio_api/info), as a browser fetches it",
                _kb(wire_o), _kb(wire_b), ratio(wire_o, wire_b), "<= 1.5x", met=wire_o <= 1.5 * wire_b),
            Row("page: the same, uncompressed (what the server builds and the browser parses)",
                _kb(raw_o), _kb(raw_b), ratio(raw_o, raw_b))]
    for part in PARTS:
        o, b = ours[part], bare[part]
        rows.append(Row(f"page: {part} wire (encoding) / raw", f"{_kb(o['wire'])} ({o['encoding']}) / {_kb(o['raw'])}",
                        f"{_kb(b['wire'])} ({b['encoding']}) / {_kb(b['raw'])}", ratio(o["wire"], b["wire"])))
    rows.append(Row("page: on the wire if bare Gradio were compressed the same way (brotli)",
                    _kb(wire_o), _kb(bare_br), ratio(wire_o, bare_br)))
    return rows


if __name__ == "__main__":
    from bench.common import table
    print(table(run()))
