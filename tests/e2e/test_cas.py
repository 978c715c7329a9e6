"""Optimistic concurrency: writes with ?index=N apply only when the
service's modify_index is N (?index=0: only when it does not exist)."""

from shoaltest import MINIMAL, assert_error, spec


def create_web(node):
    st, _, body = node.api("POST", "/v1/services", MINIMAL)
    assert st == 201, body
    return body


def test_put_with_stale_index_is_409_and_changes_nothing(node):
    v1 = create_web(node)
    st, _, v2 = node.api("POST", "/v1/services/web/scale", {"replicas": 3})
    assert st == 200, v2
    before = node.services()
    stale = v1["modify_index"]
    st, _, body = node.api("PUT", f"/v1/services/web?index={stale}", spec("web", replicas=9))
    assert_error(st, body, 409, code="conflict")
    assert node.services() == before


def test_put_with_current_index_succeeds(node):
    v1 = create_web(node)
    st, _, v2 = node.api("PUT", f"/v1/services/web?index={v1['modify_index']}",
                         spec("web", replicas=7))
    assert st == 200, v2
    assert v2["replicas"] == 7 and v2["version"] == 1  # same template
    assert v2["modify_index"] > v1["modify_index"]
    # the same index again is now stale
    st, _, body = node.api("PUT", f"/v1/services/web?index={v1['modify_index']}",
                           spec("web", replicas=8))
    assert_error(st, body, 409, code="conflict")
    assert node.get_ok("/v1/services/web")[0] == v2


def test_put_with_future_index_is_409(node):
    v1 = create_web(node)
    before = node.services()
    st, _, body = node.api("PUT", f"/v1/services/web?index={v1['modify_index'] + 1000}",
                           spec("web", replicas=9))
    assert_error(st, body, 409, code="conflict")
    assert node.services() == before


def test_index_zero_on_existing_is_409(node):
    create_web(node)
    before = node.services()
    st, _, body = node.api("PUT", "/v1/services/web?index=0", spec("web", replicas=9))
    assert_error(st, body, 409, code="conflict")
    assert node.services() == before


def test_index_zero_on_missing_creates(node):
    st, _, body = node.api("PUT", "/v1/services/fresh?index=0", spec("fresh", replicas=1))
    assert st == 201, body
    assert body["version"] == 1
    # a second create-only PUT loses
    st, _, body2 = node.api("PUT", "/v1/services/fresh?index=0", spec("fresh", replicas=5))
    assert_error(st, body2, 409, code="conflict")
    assert node.get_ok("/v1/services/fresh")[0] == body


def test_delete_with_index(node):
    v1 = create_web(node)
    st, _, v2 = node.api("POST", "/v1/services/web/scale", {"replicas": 1})
    assert st == 200, v2
    before = node.services()
    st, _, body = node.api("DELETE", f"/v1/services/web?index={v1['modify_index']}")
    assert_error(st, body, 409, code="conflict")
    assert node.services() == before
    st, _, body = node.api("DELETE", f"/v1/services/web?index={v2['modify_index']}")
    assert st == 200, body
    assert body["deleted"] == "web"
    assert node.services() == []
