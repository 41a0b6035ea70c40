from __future__ import annotations

import httpx


async def test_creates_and_reads_back_a_fan(http: httpx.AsyncClient, api_key: str) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    created = await http.post("/api/crm/fans", json={"name": "Ann", "valueCents": 5}, headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    got = await http.get(
        f"/api/crm/fans/{body['fan']['id']}",
        params={"minPosition": body["position"]},
        headers=auth,
    )
    assert got.status_code == 503 or got.json()["fan"]["name"] == "Ann"
