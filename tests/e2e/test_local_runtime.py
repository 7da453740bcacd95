"""`make run` for real: moto server, API, dispatcher and scheduler in a subprocess, over HTTP."""

import http.client
import json
import time

import pytest

from tests.support.runtime import LocalRuntime, port_open, processes_mentioning

pytestmark = pytest.mark.e2e


def test_the_runtime_serves_over_http_then_ctrl_c_leaves_nothing_behind():
    runtime = LocalRuntime()
    try:
        banner = "".join(runtime.banner)
        assert "operator key:  local-operator-key" in banner
        assert f"console:       http://127.0.0.1:{runtime.api_port}/console" in banner
        assert runtime.call("GET", "/health") == (200, {"status": "ok"})

        status, tenant = runtime.call("POST", "/tenants", "local-operator-key", {"name": "Acme"})
        assert status == 201
        status, patched = runtime.call(
            "PATCH", f"/tenants/{tenant['id']}", "local-operator-key", {"features": {"segments": True}}
        )
        assert status == 200 and patched["features"]["segments"] is True
        status, viewer = runtime.call("POST", "/api-keys", tenant["admin_key"], {"role": "viewer", "name": "read"})
        assert status == 201
        status, settings = runtime.call("GET", "/settings", viewer["key"])
        assert status == 200 and settings["limits"]["tags_per_segment"] == 10
        assert runtime.call("PATCH", "/settings", viewer["key"], {"send_rate_per_second": 2})[0] == 403
        status, missing = runtime.call("GET", "/nowhere", tenant["admin_key"])
        assert status == 404 and missing["error"]["code"] == "not_found"
        status, spec = runtime.call("GET", "/openapi.json")
        assert status == 200 and "/tenants" in spec["paths"]
        connection = http.client.HTTPConnection("127.0.0.1", runtime.api_port, timeout=10)
        connection.request("HEAD", "/health")
        head = connection.getresponse()
        assert head.status == 200 and head.read() == b"" and int(head.getheader("Content-Length")) > 0
        connection.request("GET", "/health")  # the same keep-alive connection reads a clean next response
        assert json.loads(connection.getresponse().read()) == {"status": "ok"}
        connection.close()
    finally:
        code = runtime.stop()
    assert code == 0, runtime.output
    assert "stopping: saving the state" in runtime.output and "Segments stopped." in runtime.output
    deadline = time.monotonic() + 10
    while (port_open(runtime.api_port) or port_open(runtime.moto_port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open(runtime.api_port) and not port_open(runtime.moto_port)
    assert processes_mentioning(f"-p {runtime.moto_port}") == []


def test_busy_port_is_reported_not_crashed():
    first = LocalRuntime()
    try:
        second_env = {"MOTO_PORT": str(first.moto_port)}
        with pytest.raises(RuntimeError, match="in use"):
            LocalRuntime(extra_env=second_env)
    finally:
        assert first.stop() == 0


def wait_for(check, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_a_campaign_sends_through_make_run_and_the_mail_is_in_moto():
    runtime = LocalRuntime()
    try:
        _, tenant = runtime.call("POST", "/tenants", "local-operator-key", {"name": "Mailer"})
        runtime.call("PATCH", f"/tenants/{tenant['id']}", "local-operator-key", {"features": {"segments": True}})
        key = tenant["admin_key"]
        assert runtime.call("POST", "/tags", key, {"name": "news"})[0] == 201
        for email in ("ada@example.com", "bob@example.com", "bounce@simulator.amazonses.com"):
            assert (
                runtime.call("POST", "/contacts", key, {"email": email, "tags": ["news"], "first_name": "Pat"})[0]
                == 201
            )
        _, segment = runtime.call("POST", "/segments", key, {"name": "News", "criteria": {"tag": "news"}})
        wait_for(lambda: runtime.call("GET", f"/segments/{segment['id']}", key)[1]["status"] == "ready")
        body = {
            "name": "Hello",
            "from": "news@example.com",
            "subject": "Hi {{ contact.first_name }}",
            "text": "Hello. Unsubscribe: {{ unsubscribe_url }}",
            "segments": [segment["id"]],
        }
        status, campaign = runtime.call("POST", "/campaigns", key, body)
        assert status == 201, campaign
        assert runtime.call("POST", f"/campaigns/{campaign['id']}/send", key)[1]["status"] == "sending"
        done = wait_for(
            lambda: (
                (c := runtime.call("GET", f"/campaigns/{campaign['id']}", key)[1])["status"] == "sent"
                and c["stats"]["bounced"] == 1
                and c
            )
        )
        assert done["stats"]["sent"] == 3
        suppressed = runtime.call("GET", "/suppressions", key)[1]["items"]
        assert [(s["email"], s["reason"]) for s in suppressed] == [("bounce@simulator.amazonses.com", "bounce")]

        outbox = runtime.sent_mail()
        to_us = [m for m in outbox if "Hi Pat" in m["raw_data"]]
        assert sorted(m["destinations"][0] for m in to_us) == [
            "ada@example.com",
            "bob@example.com",
            "bounce@simulator.amazonses.com",
        ]
        assert all("List-Unsubscribe-Post: List-Unsubscribe=One-Click" in m["raw_data"] for m in to_us)
    finally:
        assert runtime.stop() == 0, runtime.output


def test_a_trigger_tags_and_rewards_a_new_partner_through_make_run():
    runtime = LocalRuntime()
    try:
        _, tenant = runtime.call("POST", "/tenants", "local-operator-key", {"name": "Partners"})
        runtime.call("PATCH", f"/tenants/{tenant['id']}", "local-operator-key", {"features": {"segments": True}})
        key = tenant["admin_key"]
        assert runtime.call("POST", "/tags", key, {"name": "partner"})[0] == 201
        _, segment = runtime.call("POST", "/segments", key, {"name": "Partners", "criteria": {"tag": "partner"}})
        wait_for(lambda: runtime.call("GET", f"/segments/{segment['id']}", key)[1]["status"] == "ready")
        tagging = {
            "name": "Tag new Lisbon partners",
            "event": {"type": "contact.created"},
            "conditions": {"attr": "city", "op": "eq", "value": "Lisbon"},
            "actions": [{"type": "add_tag", "tag": "partner"}],
        }
        rewarding = {
            "name": "Welcome partners",
            "event": {"type": "segment.entered", "segments": [segment["id"]]},
            "actions": [{"type": "reward", "amount": 50, "currency": "USD"}],
        }
        assert runtime.call("POST", "/triggers", key, tagging)[0] == 201
        assert runtime.call("POST", "/triggers", key, rewarding)[0] == 201
        for name, city in (("ana", "Lisbon"), ("rui", "Porto")):
            body = {"external_id": name, "email": f"{name}@example.com", "attributes": {"city": city}}
            assert runtime.call("POST", "/contacts", key, body)[0] == 201
        ledger = wait_for(lambda: runtime.call("GET", "/contacts/ana/rewards", key)[1]["items"])
        assert [(r["amount"], r["currency"]) for r in ledger] == [(50, "USD")]
        assert runtime.call("GET", "/contacts/ana", key)[1]["tags"] == ["partner"]
        assert runtime.call("GET", "/contacts/rui", key)[1]["tags"] == []
        assert runtime.call("GET", "/contacts/rui/rewards", key)[1]["items"] == []
    finally:
        assert runtime.stop() == 0, runtime.output


def test_make_run_keeps_its_state_across_restarts_and_a_queued_message_is_still_processed(tmp_path):
    operator = "local-operator-key"
    first = LocalRuntime(extra_env={"SEGMENTS_LOCAL_POLLERS": "0"}, state=tmp_path)  # nothing handled: all stays queued
    try:
        _, tenant = first.call("POST", "/tenants", operator, {"name": "Kept"})
        first.call("PATCH", f"/tenants/{tenant['id']}", operator, {"features": {"segments": True}})
        key = tenant["admin_key"]
        assert first.call("POST", "/tags", key, {"name": "vip"})[0] == 201
        assert first.call("POST", "/contacts", key, {"external_id": "p-1", "tags": ["vip"]})[0] == 201
        status, segment = first.call("POST", "/segments", key, {"name": "VIPs", "criteria": {"tag": "vip"}})
        assert status == 201 and segment["status"] == "evaluating"  # its job waits on the queue
        body = {"name": "n", "from": "news@example.com", "subject": "Kept", "text": "t", "segments": [segment["id"]]}
        _, campaign = first.call("POST", "/campaigns", key, body)
        assert first.call("POST", f"/campaigns/{campaign['id']}/test", key, {"emails": ["qa@example.com"]})[0] == 200
    finally:
        assert first.stop() == 0, first.output
    assert "starting empty" in "".join(first.banner)

    second = LocalRuntime(extra_env={"SEGMENTS_LOCAL_SAVE_SECONDS": "1"}, state=tmp_path)
    try:
        banner = "".join(second.banner)
        assert "restored" in banner and "sent mails" in banner, banner
        assert second.call("GET", "/contacts/p-1", key)[1]["tags"] == ["vip"]
        ready = wait_for(lambda: (s := second.call("GET", f"/segments/{segment['id']}", key)[1])["status"] == "ready"
                         and s)  # fmt: skip
        assert ready["member_count"] == 1  # the evaluation queued before the restart ran after it
        assert any("Subject: [Test] Kept" in m["raw_data"] for m in second.sent_mail())
        assert second.call("POST", "/contacts", key, {"external_id": "p-2"})[0] == 201
        time.sleep(2.5)  # past a periodic save (every second here, every 5 s by default)
        second.process.kill()  # kill -9: no last save; moto follows its parent
        second.process.wait()
    finally:
        second.stop()

    third = LocalRuntime(state=tmp_path)
    try:
        assert third.call("GET", "/contacts/p-2", key)[0] == 200  # saved periodically, before the kill
    finally:
        assert third.stop() == 0
    fresh = LocalRuntime(extra_env={"RESET": "1"}, state=tmp_path)
    try:
        assert "starting empty" in "".join(fresh.banner)
        assert fresh.call("GET", "/contacts/p-1", key)[0] == 401  # the tenant's key is gone with everything
    finally:
        assert fresh.stop() == 0
