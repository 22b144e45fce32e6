// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The local HTTP/1.1 server: the connection table's limits. Every peer user (by SO_PEERCRED uid)
 * has a share of the connections; a newcomer gets room by closing idle connections of whoever
 * holds the most, or is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "api/http-internal.h"
#include "api/http.h"
#include "shared/log.h"

/* --- Peers and their shares ---------------------------------------------------------------- */

struct http_peer *http_server_peer_get(struct http_server *s, uid_t uid)
{
	for (struct http_peer *p = s->peers; p; p = p->next)
		if (p->uid == uid)
			return p;
	return NULL;
}

void http_server_peer_put(struct http_server *s, struct http_peer *peer)
{
	if (peer->n_conns > 0 || peer->pinned)
		return;
	for (struct http_peer **p = &s->peers; *p; p = &(*p)->next)
		if (*p == peer) {
			*p = peer->next;
			free(peer);
			return;
		}
}

/* Whether @c could be closed for a newcomer without anyone noticing more than a keep-alive
 * connection closed by the server: it waits for a request and owes no output. */
static bool conn_is_idle(const struct http_conn *c)
{
	return !c->closed && !c->overflow && c->state == CONN_IDLE &&
	       http_conn_out_pending(c) == 0 && c->in_off == c->in_len;
}

static bool conn_older(const struct http_conn *a, const struct http_conn *b)
{
	return a->since < b->since || (a->since == b->since && a->serial < b->serial);
}

/*
 * The connection to close for a newcomer of @peer when the table is full: the oldest idle
 * connection of the user holding the most connections. @peer NULL (a privileged newcomer):
 * anyone's. Otherwise only unprivileged connections count, and only of a user that holds at
 * least two more than the newcomer's user, or of its own: a share is never taken from someone
 * who would end up with less. NULL when there is none.
 */
static struct http_conn *server_pick_victim(struct http_server *s, const struct http_peer *peer)
{
	struct http_conn *best = NULL;

	for (struct http_conn *c = s->conns; c; c = c->next) {
		if (!conn_is_idle(c))
			continue;
		if (peer && (c->privileged ||
			     (c->peer != peer && c->peer->n_conns < peer->n_conns + 2)))
			continue;
		if (!best || c->peer->n_conns > best->peer->n_conns ||
		    (c->peer->n_conns == best->peer->n_conns && conn_older(c, best)))
			best = c;
	}
	return best;
}

/* The oldest idle connection of @peer, or NULL. */
static struct http_conn *server_oldest_idle_of(struct http_server *s,
					       const struct http_peer *peer)
{
	struct http_conn *best = NULL;

	for (struct http_conn *c = s->conns; c; c = c->next)
		if (c->peer == peer && conn_is_idle(c) && (!best || conn_older(c, best)))
			best = c;
	return best;
}

/*
 * Finds room for a new connection of @c's peer, closing idle connections where its share or
 * the table is full. Returns true when it may be served; false with c->refusal set.
 */
bool http_server_admit(struct http_server *s, struct http_conn *c, struct http_peer *peer)
{
	const struct http_limits *l = &s->limits;
	size_t pool = l->max_connections - MIN(l->reserved_connections, l->max_connections);

	for (;;) {
		struct http_conn *victim;

		if (!c->privileged && peer->n_conns >= l->max_connections_per_uid) {
			victim = server_oldest_idle_of(s, peer);
			if (!victim) {
				snprintf(c->refusal, sizeof(c->refusal),
					 "Too many connections of uid %u (limit %zu), try again later",
					 (unsigned)c->cred.uid, l->max_connections_per_uid);
				return false;
			}
		} else if (s->n_conns >= l->max_connections ||
			   (!c->privileged && s->n_unprivileged >= pool)) {
			victim = server_pick_victim(s, c->privileged ? NULL : peer);
			if (!victim) {
				snprintf(c->refusal, sizeof(c->refusal),
					 "Too many connections (limit %zu), try again later",
					 c->privileged ? l->max_connections : pool);
				return false;
			}
		} else {
			return true;
		}
		log_debug("HTTP: closing an idle connection of UID %u for a new one of UID %u.",
			  (unsigned)victim->cred.uid, (unsigned)c->cred.uid);
		http_conn_close(victim);
	}
}

bool http_server_is_privileged(const struct http_server *s, const struct http_conn *c)
{
	if (c->cred.uid == 0 || c->cred.uid == geteuid())
		return true;
	return s->privileged &&
	       s->privileged(&c->cred, c->groups, c->n_groups, s->privileged_userdata);
}
