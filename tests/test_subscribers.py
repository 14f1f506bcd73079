"""Subscribers API: validation per row, upsert, listing."""

from __future__ import annotations


def upload(client, headers, rows):
    return client.post("/api/v1/subscribers", json=rows, headers=headers)


def test_upsert_reports_counts_and_rejected_rows(client, tokens):
    rows = [
        {
            "external_id": "c1",
            "email": "Anna@Example.com",
            "phone": "+31 6 12345678",
            "audiences": ["consumers"],
        },
        {
            "external_id": "c2",
            "phone": "06 12345679",
            "locale": "nl",
            "audiences": ["consumers", "business"],
        },
        {"external_id": "bad-phone", "phone": "12", "audiences": ["consumers"]},
        {"external_id": "bad-email", "email": "nobody@", "audiences": ["consumers"]},
        {"external_id": "no-contact", "audiences": ["consumers"]},
        {"external_id": "bad-audience", "email": "x@example.com", "audiences": ["martians"]},
        {
            "external_id": "bad-locale",
            "email": "y@example.com",
            "audiences": ["staff"],
            "locale": "fr",
        },
        {
            "external_id": "bad-channel",
            "email": "z@example.com",
            "audiences": ["staff"],
            "channels": ["fax"],
        },
        "not an object",
    ]
    response = upload(client, tokens["helpdesk"], rows)
    assert response.status_code == 200
    report = response.get_json()
    assert report["created"] == 2 and report["updated"] == 0
    rejected = {row["index"]: row for row in report["rejected"]}
    assert sorted(rejected) == [2, 3, 4, 5, 6, 7, 8]
    assert "phone" in rejected[2]["errors"]
    assert "email" in rejected[3]["errors"]
    assert "email or phone" in rejected[4]["errors"]["_schema"][0]
    assert "martians" in rejected[5]["errors"]["audiences"][0]
    assert "fr" in rejected[6]["errors"]["locale"][0]
    assert "fax" in rejected[7]["errors"]["channels"][0]
    assert rejected[2]["external_id"] == "bad-phone"

    listed = client.get("/api/v1/subscribers", headers=tokens["helpdesk"]).get_json()
    assert listed["total"] == 2
    by_id = {s["external_id"]: s for s in listed["items"]}
    # Normalised: E.164 (national number read with the plan's default region NL), email case.
    assert by_id["c1"]["phone"] == "+31612345678"
    assert by_id["c1"]["email"] == "Anna@example.com"
    assert by_id["c2"]["phone"] == "+31612345679"
    assert by_id["c2"]["locale"] == "nl" and by_id["c1"]["locale"] == "en"


def test_upsert_updates_instead_of_duplicating(client, tokens):
    upload(
        client,
        tokens["admin"],
        [{"external_id": "c1", "email": "a@example.com", "audiences": ["consumers"]}],
    )
    report = upload(
        client,
        tokens["admin"],
        [
            {"external_id": "c1", "email": "a.new@example.com", "audiences": ["business"]},
            {"email": "b@example.com", "audiences": ["consumers"]},
        ],
    ).get_json()
    assert report == {"created": 1, "updated": 1, "rejected": []}
    again = upload(
        client, tokens["admin"], [{"email": "b@example.com", "audiences": ["staff"]}]
    ).get_json()
    assert again["updated"] == 1 and again["created"] == 0
    assert client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["total"] == 2
    business = client.get(
        "/api/v1/subscribers?audience=business", headers=tokens["admin"]
    ).get_json()
    assert [s["email"] for s in business["items"]] == ["a.new@example.com"]
    consumers = client.get(
        "/api/v1/subscribers?audience=consumers", headers=tokens["admin"]
    ).get_json()
    assert consumers["total"] == 0, "moving audiences removes the person from the old one"


def test_list_is_paginated(client, tokens):
    rows = [{"email": f"p{i}@example.com", "audiences": ["consumers"]} for i in range(25)]
    upload(client, tokens["admin"], rows)
    page = client.get("/api/v1/subscribers?page=3&per_page=10", headers=tokens["admin"]).get_json()
    assert page["total"] == 25 and page["page"] == 3
    assert [s["email"] for s in page["items"]] == [f"p{i}@example.com" for i in range(20, 25)]


def test_all_rows_rejected_is_422(client, tokens):
    response = upload(client, tokens["admin"], [{"email": "nope", "audiences": ["consumers"]}])
    assert response.status_code == 422
    assert response.get_json()["rejected"][0]["index"] == 0
    # The one error shape too, beside the report: code, status, message, errors.
    body = response.get_json()
    assert (body["code"], body["status"]) == (422, "Unprocessable Entity")
    assert "all 1 rows were rejected" in body["message"]
    assert body["errors"]["subscribers"][0].startswith("row 0: email")


def test_bad_bodies(client, tokens):
    assert upload(client, tokens["admin"], {"email": "a@example.com"}).status_code == 400
    assert upload(client, tokens["admin"], []).status_code == 422
    bad = client.get("/api/v1/subscribers?audience=martians", headers=tokens["admin"])
    assert bad.status_code == 422 and "audience" in bad.get_json()["message"]
    assert client.get("/api/v1/subscribers?per_page=0", headers=tokens["admin"]).status_code == 422
