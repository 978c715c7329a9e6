"""Services through the REST API: create, list, inspect, update, scale,
delete, and the canonical spec with every default filled in."""

from shoaltest import MINIMAL, assert_error, spec

DEFAULT_UPDATE = {
    "parallelism": 1,
    "delay": "0s",
    "order": "stop-first",
    "failure_action": "pause",
    "monitor": "5s",
    "max_failure_ratio": 0,
    "progress_deadline": "10m",
}


def index_of(headers):
    v = headers.get("X-Shoal-Index")
    assert v is not None, "answer has no X-Shoal-Index header"
    return int(v)


def check_minimal_defaults(s):
    assert s["name"] == "web"
    assert s["mode"] == "replicated"
    assert s["replicas"] == 2
    assert s["labels"] == {}
    t = s["task"]
    assert t["driver"] == "process"
    assert t["image"] == ""
    assert t["command"] == ["/bin/sleep", "1000"]
    assert t["args"] == []
    assert t["env"] == {}
    assert t["workdir"] == ""
    assert t["user"] == ""
    assert t["resources"] == {"reservations": {"cpu": 0, "memory": 0},
                              "limits": {"cpu": 0, "memory": 0, "pids": 0}}
    assert t["restart"] == {"condition": "any", "delay": "5s", "max_attempts": 0,
                            "window": "0s"}
    assert t["stop_signal"] == "SIGTERM"
    assert t["stop_grace_period"] == "10s"
    assert t["health"] is None
    assert t["ports"] == []
    assert t["network"] == "host"
    assert s["placement"] == {"constraints": [], "max_replicas_per_node": 0,
                              "preferences": [], "strategy": "spread"}
    assert s["update"] == DEFAULT_UPDATE
    assert s["rollback"] == DEFAULT_UPDATE
    assert s["version"] == 1
    assert isinstance(s["create_index"], int) and s["create_index"] > 0
    assert s["modify_index"] == s["create_index"]


def test_minimal_spec_gets_every_default(node):
    st, _, created = node.api("POST", "/v1/services", MINIMAL)
    assert st == 201, created
    check_minimal_defaults(created)

    got, hdrs = node.get_ok("/v1/services/web")
    check_minimal_defaults(got)
    assert got == created
    assert index_of(hdrs) == got["modify_index"]


def test_list_is_sorted_by_name(node):
    for name in ("bravo", "alpha", "charlie"):
        st, _, body = node.api("POST", "/v1/services", spec(name))
        assert st == 201, body
    lst, hdrs = node.get_ok("/v1/services")
    assert [s["name"] for s in lst] == ["alpha", "bravo", "charlie"]
    assert index_of(hdrs) == max(s["modify_index"] for s in lst)
    for s in lst:
        assert s["version"] == 1 and s["task"]["driver"] == "process"


def test_empty_list(node):
    lst, _ = node.get_ok("/v1/services")
    assert lst == []


def test_inspect_missing_is_404(node):
    st, _, body = node.api("GET", "/v1/services/nope")
    assert_error(st, body, 404, code="not_found")


def test_put_updates_and_bumps_version(node):
    st, _, v1 = node.api("POST", "/v1/services", MINIMAL)
    assert st == 201, v1
    new = spec("web", replicas=3)
    new["task"]["env"] = ["A=1", "B=two"]
    st, _, v2 = node.api("PUT", "/v1/services/web", new)
    assert st == 200, v2
    assert v2["version"] == 2
    assert v2["replicas"] == 3
    assert v2["task"]["env"] == {"A": "1", "B": "two"}
    assert v2["create_index"] == v1["create_index"]
    assert v2["modify_index"] > v1["modify_index"]
    # A new template starts a rollout, whose progress the GET may show.
    assert v2["rollout"]["kind"] == "update" and v2["rollout"]["to_version"] == 2
    assert v2["stable_spec"]["version"] == 1
    got, _ = node.get_ok("/v1/services/web")
    assert {k: v for k, v in got.items() if k not in ("rollout", "stable_spec")} == \
        {k: v for k, v in v2.items() if k not in ("rollout", "stable_spec")}


def test_put_without_name_in_body(node):
    assert node.api("POST", "/v1/services", MINIMAL)[0] == 201
    body = {"replicas": 4, "task": {"command": ["/bin/sleep", "1000"]}}
    st, _, got = node.api("PUT", "/v1/services/web", body)
    assert st == 200, got
    assert got["name"] == "web" and got["replicas"] == 4 and got["version"] == 1  # same template


def test_put_of_get_body_round_trips(node):
    """A GET answer (with its read-only fields) can be edited and PUT back."""
    assert node.api("POST", "/v1/services", MINIMAL)[0] == 201
    got, _ = node.get_ok("/v1/services/web")
    got["labels"] = {"tier": "front"}
    st, _, upd = node.api("PUT", "/v1/services/web", got)
    assert st == 200, upd
    assert upd["labels"] == {"tier": "front"}
    assert upd["version"] == 1  # labels only: no new template
    assert upd["modify_index"] > got["modify_index"]


def test_put_creates_missing(node):
    st, _, body = node.api("PUT", "/v1/services/api", spec("api", replicas=1))
    assert st == 201, body
    assert body["version"] == 1 and body["replicas"] == 1
    assert node.get_ok("/v1/services/api")[0] == body


def test_put_name_mismatch_is_refused(node):
    assert node.api("POST", "/v1/services", MINIMAL)[0] == 201
    before = node.services()
    st, _, body = node.api("PUT", "/v1/services/web", spec("other"))
    assert_error(st, body, 400, code="bad_request", field="name")
    assert node.services() == before


def test_scale_moves_index_not_version(node):
    st, _, v1 = node.api("POST", "/v1/services", MINIMAL)
    assert st == 201, v1
    st, _, v2 = node.api("POST", "/v1/services/web/scale", {"replicas": 5})
    assert st == 200, v2
    assert v2["replicas"] == 5
    assert v2["version"] == 1
    assert v2["modify_index"] > v1["modify_index"]
    assert v2["create_index"] == v1["create_index"]
    got, hdrs = node.get_ok("/v1/services/web")
    assert got == v2
    assert index_of(hdrs) == v2["modify_index"]
    st, _, v3 = node.api("POST", "/v1/services/web/scale", {"replicas": 0})
    assert st == 200, v3
    assert v3["replicas"] == 0 and v3["version"] == 1
    assert v3["modify_index"] > v2["modify_index"]


def test_scale_of_global_service_is_400(node):
    st, _, g = node.api("POST", "/v1/services",
                        {"name": "agent", "mode": "global",
                         "task": {"command": ["/bin/sleep", "1000"]}})
    assert st == 201, g
    assert g["mode"] == "global" and g["replicas"] == 0
    st, _, body = node.api("POST", "/v1/services/agent/scale", {"replicas": 3})
    assert_error(st, body, 400, code="bad_request")
    assert node.get_ok("/v1/services/agent")[0] == g


def test_delete(node):
    st, _, created = node.api("POST", "/v1/services", MINIMAL)
    assert st == 201, created
    assert node.api("POST", "/v1/services", spec("keep"))[0] == 201
    st, _, body = node.api("DELETE", "/v1/services/web")
    assert st == 200, body
    assert body["deleted"] == "web"
    assert isinstance(body["index"], int) and body["index"] > created["modify_index"]
    st, _, body = node.api("GET", "/v1/services/web")
    assert_error(st, body, 404, code="not_found")
    assert [s["name"] for s in node.services()] == ["keep"]
    st, _, body = node.api("DELETE", "/v1/services/web")
    assert_error(st, body, 404, code="not_found")


def test_recreate_after_delete_starts_at_version_1(node):
    assert node.api("POST", "/v1/services", MINIMAL)[0] == 201
    assert node.api("POST", "/v1/services/web/scale", {"replicas": 3})[0] == 200
    st, _, d = node.api("DELETE", "/v1/services/web")
    assert st == 200, d
    st, _, again = node.api("POST", "/v1/services", MINIMAL)
    assert st == 201, again
    assert again["version"] == 1
    assert again["create_index"] > d["index"]


def test_canonical_forms(node):
    s = spec("canon", replicas=1)
    s["task"].update({
        "env": ["X=1", "Y=a=b"],
        "stop_signal": 9,
        "stop_grace_period": "90s",
        "resources": {"limits": {"memory": "64M", "cpu": 0.5},
                      "reservations": {"memory": 1024}},
        "ports": [{"published": 8080, "target": 80}],
    })
    s["update"] = {"parallelism": 0, "delay": "250ms"}
    st, _, got = node.api("POST", "/v1/services", s)
    assert st == 201, got
    t = got["task"]
    assert t["env"] == {"X": "1", "Y": "a=b"}
    assert t["stop_signal"] == "SIGKILL"
    assert t["stop_grace_period"] == "1m30s"
    assert t["resources"]["limits"]["memory"] == 64 * 1024 * 1024
    assert t["resources"]["limits"]["cpu"] == 0.5
    assert t["resources"]["reservations"]["memory"] == 1024
    assert t["ports"] == [{"published": 8080, "target": 80, "protocol": "tcp"}]
    assert got["update"]["parallelism"] == 0
    assert got["update"]["delay"] == "250ms"
    assert got["update"]["order"] == "stop-first"
