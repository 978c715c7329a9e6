/* Joining a cluster at first start: one request to a manager with the join
 * token; the answer gives this node its role, credential and the managers. */
#ifndef SHOAL_AGENT_JOIN_H
#define SHOAL_AGENT_JOIN_H

#include "agent/node.h"

/* Asks the manager whose API is at addr ("ip:port" or "http://ip:port") to
 * admit node n (its id, name, addresses and labels set) with token. On
 * success fills the role, credential, cluster id, managers and (managers)
 * the admin token into n. Blocks (it runs before the loop). Returns 0 or a
 * negative errno with the reason in errmsg (256 bytes). */
int agent_join(struct agent_node *n, const char *addr, const char *token, char *errmsg);

#endif
