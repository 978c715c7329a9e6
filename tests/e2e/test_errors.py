"""Bad input: each gets the right 4xx with a JSON body holding "error",
"code" and "field", and nothing changes."""

import json

import pytest

from shoaltest import MINIMAL, RawConn, assert_error, spec, wait_until

CMD = {"command": ["/bin/sleep", "1000"]}


@pytest.fixture
def enode(snode):
    """The module's shared node, holding the service "web"."""
    if snode.api("GET", "/v1/services/web")[0] == 404:
        st, _, body = snode.api("POST", "/v1/services", MINIMAL)
        assert st == 201, body
    return snode


def raw(s):
    return ("raw", s)


# (id, method, path, body (dict, or raw(text)), status, code, field)
CASES = [
    ("malformed-json", "POST", "/v1/services", raw('{"name": "x", "task": {'),
     400, "bad_request", None),
    ("not-json", "POST", "/v1/services", raw("name=x"), 400, "bad_request", None),
    ("empty-body", "POST", "/v1/services", raw(""), 400, "bad_request", None),
    ("body-is-list", "POST", "/v1/services", raw("[1, 2]"), 400, "bad_request", None),
    ("trailing-garbage", "POST", "/v1/services",
     raw(json.dumps(spec("junk")) + " }"), 400, "bad_request", None),
    ("replicas-string", "POST", "/v1/services",
     {"name": "x", "replicas": "two", "task": CMD}, 400, "bad_request", "replicas"),
    ("replicas-float", "POST", "/v1/services",
     {"name": "x", "replicas": 1.5, "task": CMD}, 400, "bad_request", "replicas"),
    ("command-string", "POST", "/v1/services",
     {"name": "x", "task": {"command": "/bin/sleep 1000"}}, 400, "bad_request", "task.command"),
    ("command-empty", "POST", "/v1/services",
     {"name": "x", "task": {"command": []}}, 400, "bad_request", "task.command"),
    ("task-missing", "POST", "/v1/services", {"name": "x"}, 400, "bad_request", "task"),
    ("name-missing", "POST", "/v1/services", {"task": CMD}, 400, "bad_request", "name"),
    ("name-number", "POST", "/v1/services", {"name": 7, "task": CMD},
     400, "bad_request", "name"),
    ("unknown-top-field", "POST", "/v1/services", {"name": "x", "task": CMD, "bogus": 1},
     400, "bad_request", "bogus"),
    ("unknown-task-field", "POST", "/v1/services",
     {"name": "x", "task": {"command": ["/bin/true"], "comand": ["x"]}},
     400, "bad_request", "task.comand"),
    ("unknown-deep-field", "POST", "/v1/services",
     {"name": "x", "task": {"command": ["/bin/true"], "restart": {"condtion": "any"}}},
     400, "bad_request", "task.restart.condtion"),
    ("negative-replicas", "POST", "/v1/services", {"name": "x", "replicas": -1, "task": CMD},
     400, "bad_request", "replicas"),
    ("too-many-replicas", "POST", "/v1/services",
     {"name": "x", "replicas": 100001, "task": CMD}, 400, "bad_request", "replicas"),
    ("bad-duration", "POST", "/v1/services",
     {"name": "x", "task": {"command": ["/bin/true"], "stop_grace_period": "soon"}},
     400, "bad_request", "task.stop_grace_period"),
    ("bad-mode", "POST", "/v1/services", {"name": "x", "mode": "daemon", "task": CMD},
     400, "bad_request", "mode"),
    ("global-with-replicas", "POST", "/v1/services",
     {"name": "x", "mode": "global", "replicas": 3, "task": CMD}, 400, "bad_request", None),
    ("bad-name-upper", "POST", "/v1/services", {"name": "Web_1", "task": CMD},
     400, "bad_request", "name"),
    ("bad-name-dash", "POST", "/v1/services", {"name": "-web", "task": CMD},
     400, "bad_request", "name"),
    ("bad-name-long", "POST", "/v1/services", {"name": "a" * 64, "task": CMD},
     400, "bad_request", "name"),
    ("bad-name-empty", "POST", "/v1/services", {"name": "", "task": CMD},
     400, "bad_request", "name"),
    ("nested-100", "POST", "/v1/services",
     raw('{"name": "x", "task": {"command": ["/bin/true"]}, "labels": '
         + "[" * 100 + "]" * 100 + "}"), 400, "bad_request", None),
    ("nested-100-objects", "POST", "/v1/services",
     raw('{"name": "x", "labels": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}"),
     400, "bad_request", None),
    ("post-existing", "POST", "/v1/services", MINIMAL, 409, "conflict", None),
    ("post-existing-changed", "POST", "/v1/services", spec("web", replicas=9),
     409, "conflict", None),
    ("put-bad-spec", "PUT", "/v1/services/web",
     {"name": "web", "replicas": -3, "task": CMD}, 400, "bad_request", "replicas"),
    ("put-unknown-field", "PUT", "/v1/services/web",
     {"name": "web", "task": CMD, "extra": True}, 400, "bad_request", "extra"),
    ("unknown-route", "GET", "/v1/bogus", None, 404, "not_found", None),
    ("unknown-route-deep", "GET", "/v1/services/web/bogus", None, 404, "not_found", None),
    ("unknown-version", "GET", "/v2/services", None, 404, "not_found", None),
    ("wrong-method-list", "DELETE", "/v1/services", None, 405, "method_not_allowed", None),
    ("wrong-method-service", "PATCH", "/v1/services/web", {"replicas": 1},
     405, "method_not_allowed", None),
    ("wrong-method-scale", "GET", "/v1/services/web/scale", None,
     405, "method_not_allowed", None),
    ("wrong-method-health", "POST", "/v1/health", None, 405, "method_not_allowed", None),
    ("scale-missing", "POST", "/v1/services/nope/scale", {"replicas": 2},
     404, "not_found", None),
    ("scale-string", "POST", "/v1/services/web/scale", {"replicas": "5"},
     400, "bad_request", "replicas"),
    ("scale-float", "POST", "/v1/services/web/scale", {"replicas": 2.5},
     400, "bad_request", "replicas"),
    ("scale-negative", "POST", "/v1/services/web/scale", {"replicas": -1},
     400, "bad_request", "replicas"),
    ("scale-missing-field", "POST", "/v1/services/web/scale", {},
     400, "bad_request", "replicas"),
    ("scale-malformed", "POST", "/v1/services/web/scale", raw("{replicas: 5}"),
     400, "bad_request", None),
    ("scale-unknown-field", "POST", "/v1/services/web/scale", {"replicas": 2, "x": 1},
     400, "bad_request", "x"),
    ("delete-missing", "DELETE", "/v1/services/nope", None, 404, "not_found", None),
    ("get-missing", "GET", "/v1/services/nope", None, 404, "not_found", None),
]


@pytest.mark.parametrize("method,path,body,status,code,field",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request(enode, method, path, body, status, code, field):
    before = enode.services()
    if isinstance(body, tuple):
        st, _, got = enode.api(method, path, raw_body=body[1])
    else:
        st, _, got = enode.api(method, path, body)
    assert_error(st, got, status, code=code, field=field)
    assert enode.services() == before


@pytest.mark.parametrize("token", [None, "", "wrong-token", "x" * 5000],
                         ids=["missing", "empty", "wrong", "huge"])
@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/services", None),
    ("GET", "/v1/services/web", None),
    ("POST", "/v1/services", spec("sneaky")),
    ("POST", "/v1/services/web/scale", {"replicas": 50}),
    ("DELETE", "/v1/services/web", None),
    ("GET", "/v1/cluster", None),
], ids=["list", "get", "create", "scale", "delete", "cluster"])
def test_token_required(enode, token, method, path, body):
    before = enode.services()
    st, _, got = enode.api(method, path, body, token=token)
    assert_error(st, got, 401, code="unauthorized")
    assert enode.services() == before


def test_wrong_auth_scheme(enode):
    st, _, got = enode.api("GET", "/v1/services", token=None,
                           headers={"Authorization": f"Basic {enode.token}"})
    assert_error(st, got, 401, code="unauthorized")


def test_health_needs_no_token(enode):
    st, _, body = enode.api("GET", "/v1/health", token=None)
    assert st == 200, body
    assert body["status"] == "ok" and body["leader"] is True
    assert isinstance(body["node"], str) and body["node"]


def test_nested_16_is_accepted_by_the_parser(enode):
    """Depth 16 is the limit: a body exactly that deep is parsed, and refused
    only for its content (label values must be strings)."""
    inner = '{"a": ' * 15 + "1" + "}" * 15  # 15 deep, 16 with the outer object
    body = '{"name": "deep", "task": {"command": ["/bin/true"]}, "labels": ' + inner + "}"
    before = enode.services()
    st, _, got = enode.api("POST", "/v1/services", raw_body=body)
    assert_error(st, got, 400, code="bad_request")
    assert got["field"].startswith("labels"), got
    assert enode.services() == before


def _send_big(node, head, body):
    """Sends head then body (the server may stop reading and answer early)
    and returns (status, parsed JSON body) of the answer."""
    with RawConn(node) as c:
        c.send(head)
        try:
            c.send(body)
        except OSError:
            pass
        try:
            resp = c.read_response()
        except ConnectionResetError as e:
            raise AssertionError("connection reset before an answer") from e
        assert resp is not None, "connection closed without an answer"
        return resp[0], json.loads(resp[2])


def test_oversize_body_is_413(enode):
    before = enode.services()
    s = spec("huge", labels={"big": "x" * (1 << 20)})
    body = json.dumps(s).encode()
    assert len(body) > (1 << 20)
    head = (f"POST /v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {enode.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    st, got = _send_big(enode, head, body)
    assert_error(st, got, 413, code="too_large")
    assert enode.services() == before
    # the server still serves
    assert enode.api("GET", "/v1/health", token=None)[0] == 200


def test_oversize_content_length_alone_is_413(enode):
    """A Content-Length above the limit is refused before the body comes."""
    before = enode.services()
    head = (f"POST /v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {enode.token}\r\n"
            f"Content-Length: {64 << 20}\r\n\r\n").encode()
    st, got = _send_big(enode, head, b"{")
    assert_error(st, got, 413, code="too_large")
    assert enode.services() == before


def test_oversize_chunked_body_is_413(enode):
    before = enode.services()
    head = (f"POST /v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {enode.token}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"x" * 65536
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 17 + b"0\r\n\r\n"
    st, got = _send_big(enode, head, body)
    assert_error(st, got, 413, code="too_large")
    assert enode.services() == before


def test_body_just_under_the_limit_is_parsed(enode):
    """A large but legal body (~800 KiB) is accepted."""
    before = enode.services()
    s = spec("big", labels={f"k{i}": "v" * 4000 for i in range(2)})
    s["task"]["args"] = ["y" * 4000] * 200  # ~800 KiB, under 1 MiB
    body = json.dumps(s)
    assert len(body) < (1 << 20)
    st, _, got = enode.api("POST", "/v1/services", raw_body=body)
    assert st == 201, got
    st, _, got = enode.api("DELETE", "/v1/services/big")
    assert st == 200, got
    assert enode.services() == before


def test_server_survives_garbage(enode):
    """Bytes that are not HTTP get a 4xx or a close, and the server keeps
    serving."""
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        with RawConn(enode) as c:
            c.send(junk)
            try:
                resp = c.read_response()
            except (ConnectionResetError, AssertionError):
                resp = None
            if resp is not None:
                assert 400 <= resp[0] < 500, resp
    wait_until(lambda: enode.api("GET", "/v1/health", token=None)[0] == 200, 10)
