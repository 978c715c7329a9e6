#include "api/node_call.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/units.h"
#include "common/util.h"
#include "raft/state.h"

void api__node_ref_init(struct api_server *srv, const struct rs_state *st, const char *node_id,
                        struct api__node_ref *ref)
{
    const struct rs_node *n = rs_state_node(st, node_id);
    if (n && strcmp(n->id, node_id) != 0)
        n = NULL; /* found by name: not the node the task names */
    const char *name = n ? rs_node_str(n, "name") : node_id;
    *ref = (struct api__node_ref){.node_id = xstrdup(node_id),
                                  .node = xstrdup(name[0] ? name : node_id)};
    ref->down = n && strcmp(rs_node_str(n, "status"), "down") == 0;
    char why[512];
    if (!n) {
        snprintf(why, sizeof(why), "node %s is not in the cluster", node_id);
        ref->error = xstrdup(why);
    } else if (strcmp(n->id, srv->node_id) != 0) {
        const char *addr = rs_node_str(n, "api_address");
        ref->addr = xstrdup(addr);
        ref->credential = xstrdup(n->credential ? n->credential : "");
        if (!addr[0] || strlen(addr) > 64) {
            snprintf(why, sizeof(why), "node %s has no API address", ref->node);
            ref->error = xstrdup(why);
        }
    }
}

void api__node_ref_free(struct api__node_ref *ref)
{
    free(ref->node_id);
    free(ref->node);
    free(ref->addr);
    free(ref->credential);
    free(ref->error);
    *ref = (struct api__node_ref){0};
}

int64_t api__node_request(struct api_server *srv, const struct api__node_ref *ref,
                          const char *method, const char *path, const char *body,
                          unsigned timeout_ms, common_httpc_cb cb, void *data, char *why,
                          size_t size)
{
    char url[API__NODE_PATH_MAX + 96], auth[200];
    int64_t req = -ENAMETOOLONG;
    if (strlen(path) < API__NODE_PATH_MAX) {
        snprintf(url, sizeof(url), "http://%s%s", ref->addr, path);
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ref->credential);
        const char *headers[] = {auth, body ? "Content-Type: application/json" : NULL, NULL};
        req = common_httpc_request(srv->httpc, method, url, headers, body, body ? strlen(body) : 0,
                                   timeout_ms, cb, data);
    }
    if (req < 0)
        snprintf(why, size, "node %s cannot be asked: %s", ref->node, strerror((int)-req));
    return req;
}

int64_t api__node_post(struct api_server *srv, const struct api__node_ref *ref, const char *path,
                       const char *body, unsigned timeout_ms, common_httpc_cb cb, void *data,
                       char *why, size_t size)
{
    return api__node_request(srv, ref, "POST", path, body, timeout_ms, cb, data, why, size);
}

json_t *api__node_answer(const struct api__node_ref *ref, const struct common_httpc_response *res,
                         int64_t timeout_ms, char *why, size_t size)
{
    if (res->status == 200) {
        json_t *ans = json_loadb(res->body, res->body_len, 0, NULL);
        if (json_is_object(ans))
            return ans;
        json_decref(ans);
        snprintf(why, size, "node %s sent an answer that is not a JSON object", ref->node);
    } else if (res->error == -ETIMEDOUT) {
        char limit[32];
        common_format_duration(timeout_ms, limit, sizeof(limit));
        snprintf(why, size, "node %s did not answer within %s: %s", ref->node, limit, res->errmsg);
    } else if (res->status == 0) {
        snprintf(why, size, "node %s cannot be reached: %s", ref->node,
                 res->errmsg[0] ? res->errmsg : "no answer");
    } else {
        json_t *body = json_loadb(res->body, res->body_len, 0, NULL);
        const char *error = json_string_value(json_object_get(body, "error"));
        snprintf(why, size, "node %s answered HTTP %ld: %s", ref->node, res->status,
                 error ? error : "no error given");
        json_decref(body);
    }
    return NULL;
}
