"""CSV import over HTTP: per-row report with line numbers, streaming for large files."""

from __future__ import annotations

import io
import time


def post_csv(client, headers, data, content_type="text/csv"):
    return client.post(
        "/api/v1/subscribers/import", data=data, headers={**headers, "Content-Type": content_type}
    )


def test_good_bad_and_duplicate_rows(client, tokens):
    csv_text = (
        "external_id,email,phone,locale,audiences,channels\n"
        "c1,a@example.com,+31612345001,nl,consumers;business,\n"  # line 2
        "c2,,06 1234 5002,,consumers,sms\n"  # line 3: national number
        "c3,not-an-email,,,consumers,\n"  # line 4: bad email
        "c4,,12,,consumers,\n"  # line 5: bad phone
        "c5,e@example.com,,,,\n"  # line 6: no audience
        "c6,f@example.com,,xx,staff,\n"  # line 7: unknown locale
        "c1,a@example.com,+31612345001,nl,consumers,email\n"  # line 8: duplicate of c1
        "c7,g@example.com,,,staff,pigeon\n"  # line 9: unknown channel
        ",,,,staff,\n"  # line 10: no contact
    )
    response = post_csv(client, tokens["helpdesk"], csv_text.encode())
    assert response.status_code == 200
    report = response.get_json()
    assert (report["created"], report["updated"]) == (2, 1)
    rejected = {row["index"]: row for row in report["rejected"]}
    assert sorted(rejected) == [4, 5, 6, 7, 9, 10]
    assert "email" in rejected[4]["errors"]
    assert "phone" in rejected[5]["errors"]
    assert "audiences" in rejected[6]["errors"]
    assert "locale" in rejected[7]["errors"]
    assert "channels" in rejected[9]["errors"]
    assert "_schema" in rejected[10]["errors"]
    people = {
        p["external_id"]: p
        for p in client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    }
    assert people["c2"]["phone"] == "+31612345002" and people["c2"]["channels"] == ["sms"]
    assert people["c1"]["audiences"] == ["consumers"] and people["c1"]["channels"] == ["email"]


def test_import_errors(client, tokens):
    assert post_csv(client, tokens["admin"], b"a,b\n", "application/json").status_code == 415
    no_audiences = post_csv(client, tokens["admin"], b"email\na@example.com\n")
    assert no_audiences.status_code == 422 and "audiences" in no_audiences.get_json()["message"]
    assert post_csv(client, tokens["admin"], b"").status_code == 422
    latin1 = "email,audiences\nj\xf8rgen@example.com,consumers\n".encode("latin-1")
    bad_encoding = post_csv(client, tokens["admin"], latin1)
    assert bad_encoding.status_code == 400 and "UTF-8" in bad_encoding.get_json()["message"]
    all_bad = post_csv(client, tokens["admin"], b"email,audiences\nnope,consumers\n")
    assert all_bad.status_code == 422 and all_bad.get_json()["rejected"][0]["index"] == 2
    assert post_csv(client, tokens["monitor"], b"email,audiences\n").status_code == 403


def test_json_body_limit_does_not_apply_to_csv_import(make_app, tokens):
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    rows = "".join(f"p{i}@example.com,consumers\n" for i in range(100))
    assert len(rows) > 1000
    response = post_csv(client, tokens["admin"], ("email,audiences\n" + rows).encode())
    assert response.status_code == 200 and response.get_json()["created"] == 100
    too_big = client.post(
        "/api/v1/subscribers",
        json=[{"email": f"q{i}@example.com", "audiences": ["staff"]} for i in range(100)],
        headers=tokens["admin"],
    )
    assert too_big.status_code == 413


class Rows(io.RawIOBase):
    """A CSV file produced row by row, never held in memory as a whole.

    When the upload is 90% through, it notes how many subscribers Redis already has:
    an importer that read the whole file before storing anything would show none.
    """

    def __init__(self, count: int, redis) -> None:  # type: ignore[no-untyped-def]
        self.count = count
        self.lines = (
            f"u{i},user{i}@example.com,+3161{i:07d},,consumers,\n".encode() for i in range(count)
        )
        self.pending = b"external_id,email,phone,locale,audiences,channels\n"
        self.rows_sent = 0
        self.stored_while_uploading: int | None = None
        self.redis = redis

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while len(self.pending) < len(buffer):
            line = next(self.lines, None)
            if line is None:
                break
            self.pending += line
            self.rows_sent += 1
            if self.rows_sent == self.count * 9 // 10:
                self.stored_while_uploading = self.redis.zcard("bc:subs")
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def test_100000_rows_are_streamed_not_loaded_first(client, tokens, r):
    stream = Rows(100_000, r)
    started = time.monotonic()
    # Chunked upload (no Content-Length), as a streaming client sends a large file.
    response = client.post(
        "/api/v1/subscribers/import",
        headers={**tokens["admin"], "Content-Type": "text/csv"},
        environ_overrides={"wsgi.input": io.BufferedReader(stream), "wsgi.input_terminated": True},
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 100_000 and response.get_json()["rejected"] == []
    assert r.zcard("bc:aud:consumers") == 100_000
    # Most of the file was already stored while the last 10% was still being uploaded.
    assert stream.stored_while_uploading is not None
    assert stream.stored_while_uploading >= 80_000
    print(f"imported 100,000 rows in {elapsed:.1f}s")
