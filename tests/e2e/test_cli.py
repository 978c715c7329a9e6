"""The shoal CLI against a real node: every service verb, apply, cluster
status, and errors (exit 1 with the API's words on stderr, 2 for usage)."""

import json

from shoaltest import free_ports, spec


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def fails(p, code=1):
    assert p.returncode == code, \
        f"want exit {code}, got {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    assert p.stderr.strip(), "no message on stderr"
    return p


def as_json(p):
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise AssertionError(f"stdout is not JSON: {p.stdout!r}") from e


def create_web(node):
    ok(node.cli("service", "create", "--name", "web", "--replicas", "2", "--",
                "/bin/sleep", "1000"))


def test_cli_create_and_inspect(node):
    create_web(node)
    got, _ = node.get_ok("/v1/services/web")
    assert got["replicas"] == 2
    assert got["task"]["command"] == ["/bin/sleep", "1000"]
    assert got["version"] == 1
    shown = as_json(ok(node.cli("service", "inspect", "web", "-o", "json")))
    assert shown == got


def test_cli_ls(node):
    assert as_json(ok(node.cli("service", "ls", "-o", "json"))) == []
    create_web(node)
    ok(node.cli("service", "create", "--name", "api", "--", "/bin/sleep", "1000"))
    lst = as_json(ok(node.cli("service", "ls", "-o", "json")))
    assert lst == node.services()
    assert [s["name"] for s in lst] == ["api", "web"]
    table = ok(node.cli("service", "ls")).stdout
    assert "web" in table and "api" in table


def test_cli_global_flags(node):
    """--addr and --token before the verb, and -o before the verb."""
    create_web(node)
    p = ok(node.cli("--addr", node.addr, "--token", node.token, "-o", "json",
                    "service", "ls", auth=False))
    assert [s["name"] for s in as_json(p)] == ["web"]


def test_cli_update_env_add(node):
    create_web(node)
    ok(node.cli("service", "update", "web", "--env-add", "A=1"))
    got, _ = node.get_ok("/v1/services/web")
    assert got["task"]["env"] == {"A": "1"}
    assert got["version"] == 2
    assert got["replicas"] == 2
    assert got["task"]["command"] == ["/bin/sleep", "1000"]


def test_cli_scale_several(node):
    create_web(node)
    ok(node.cli("service", "create", "--name", "api", "--", "/bin/sleep", "1000"))
    ok(node.cli("service", "scale", "web=5", "api=2"))
    by = {s["name"]: s for s in node.services()}
    # A scale is no new version: the task template is the same.
    assert by["web"]["replicas"] == 5 and by["web"]["version"] == 1
    assert by["api"]["replicas"] == 2 and by["api"]["version"] == 1


def test_cli_rm(node):
    create_web(node)
    ok(node.cli("service", "create", "--name", "api", "--", "/bin/sleep", "1000"))
    ok(node.cli("service", "rm", "web"))
    assert [s["name"] for s in node.services()] == ["api"]
    ok(node.cli("service", "rm", "api"))
    assert node.services() == []


def test_cli_apply_one_spec(node, tmp_path):
    f = tmp_path / "web.json"
    f.write_text(json.dumps({"name": "web", "replicas": 2,
                             "task": {"command": ["/bin/sleep", "1000"]}}))
    ok(node.cli("apply", "-f", str(f)))
    got, _ = node.get_ok("/v1/services/web")
    assert got["replicas"] == 2 and got["version"] == 1
    # applying a changed file updates the service
    f.write_text(json.dumps({"name": "web", "replicas": 3,
                             "task": {"command": ["/bin/sleep", "1000"]}}))
    ok(node.cli("apply", "-f", str(f)))
    got, _ = node.get_ok("/v1/services/web")
    assert got["replicas"] == 3 and got["version"] == 1  # same template


def test_cli_apply_list(node, tmp_path):
    ok(node.cli("service", "create", "--name", "web", "--", "/bin/sleep", "1000"))
    f = tmp_path / "stack.json"
    f.write_text(json.dumps([spec("web", replicas=2), spec("api", replicas=1),
                             spec("db", replicas=1)]))
    ok(node.cli("apply", "-f", str(f)))
    by = {s["name"]: s for s in node.services()}
    assert sorted(by) == ["api", "db", "web"]
    assert by["web"]["replicas"] == 2 and by["web"]["version"] == 1  # same template
    assert by["api"]["replicas"] == 1 and by["api"]["version"] == 1
    assert by["db"]["replicas"] == 1


def test_cli_apply_stdin(node):
    ok(node.cli("apply", "-f", "-", input=json.dumps(spec("fromstdin"))))
    assert [s["name"] for s in node.services()] == ["fromstdin"]


def test_cli_cluster_status(node):
    st = as_json(ok(node.cli("cluster", "status", "-o", "json")))
    api, _ = node.get_ok("/v1/cluster")
    assert st["id"] == api["id"]
    assert st["leader"]["id"] == api["node"]["id"] == st["node"]["id"]
    assert len(st["members"]) == 1
    assert st["node"]["api_address"] == f"127.0.0.1:{node.api_port}"
    assert st["node"]["raft_address"] == f"127.0.0.1:{node.raft_port}"
    ok(node.cli("cluster", "status"))


# ---- errors ----------------------------------------------------------------

def api_words(node, method, path, body=None):
    st, _, err = node.api(method, path, body)
    assert st >= 400 and isinstance(err, dict), (st, err)
    return err["error"]


def test_cli_inspect_missing(node):
    p = fails(node.cli("service", "inspect", "nope"))
    assert api_words(node, "GET", "/v1/services/nope") in p.stderr


def test_cli_create_bad_name(node):
    p = fails(node.cli("service", "create", "--name", "Bad_Name", "--", "/bin/true"))
    words = api_words(node, "POST", "/v1/services",
                      {"name": "Bad_Name", "task": {"command": ["/bin/true"]}})
    assert words in p.stderr
    assert "name" in p.stderr
    assert node.services() == []


def test_cli_create_existing(node):
    create_web(node)
    before = node.services()
    p = fails(node.cli("service", "create", "--name", "web", "--replicas", "7", "--",
                       "/bin/true"))
    assert api_words(node, "POST", "/v1/services", spec("web")) in p.stderr
    assert node.services() == before


def test_cli_scale_missing(node):
    create_web(node)
    before = node.services()
    p = fails(node.cli("service", "scale", "nope=3"))
    assert api_words(node, "POST", "/v1/services/nope/scale", {"replicas": 3}) in p.stderr
    assert node.services() == before


def test_cli_scale_not_a_number(node):
    create_web(node)
    before = node.services()
    p = node.cli("service", "scale", "web=lots")
    assert p.returncode in (1, 2), p
    assert p.stderr.strip()
    assert node.services() == before


def test_cli_rm_missing(node):
    p = fails(node.cli("service", "rm", "nope"))
    assert api_words(node, "DELETE", "/v1/services/nope") in p.stderr


def test_cli_wrong_token(node):
    p = fails(node.cli("service", "ls", env={"SHOAL_TOKEN": "wrong"}))
    st, _, err = node.api("GET", "/v1/services", token="wrong")
    assert st == 401
    assert err["error"] in p.stderr


def test_cli_unreachable(node):
    (port,) = free_ports(1)
    p = fails(node.cli("service", "ls", env={"SHOAL_ADDR": f"http://127.0.0.1:{port}"}))
    assert f"127.0.0.1:{port}" in p.stderr


def test_cli_usage_errors(node):
    fails(node.cli("frobnicate"), code=2)
    fails(node.cli("service", "ls", "--bogus-flag"), code=2)
    fails(node.cli("service", "create", "--name", "x", "--replicas", "many", "--",
                   "/bin/true"), code=2)
    fails(node.cli("service", "update", "web", "--env-add", "NOEQUALS"), code=2)
    fails(node.cli("apply"), code=2)
    assert node.services() == []


def test_cli_apply_bad_files(node, tmp_path):
    create_web(node)
    before = node.services()
    missing = tmp_path / "missing.json"
    p = fails(node.cli("apply", "-f", str(missing)))
    assert str(missing) in p.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "task": ')
    p = fails(node.cli("apply", "-f", str(broken)))
    assert str(broken) in p.stderr
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"name": "x", "replicas": -1,
                                   "task": {"command": ["/bin/true"]}}))
    p = fails(node.cli("apply", "-f", str(invalid)))
    assert "replicas" in p.stderr
    assert node.services() == before


def test_cli_help(node):
    p = ok(node.cli("--help"))
    assert "service" in p.stdout
    ok(node.cli("service", "create", "--help"))
