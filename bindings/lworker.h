/* lworker.h: mp.worker and shared channels (lworker.c); the public half
 * (moonport_workers_*) is in moonport.h. Not a public header. */
#ifndef LWORKER_H
#define LWORKER_H

#include "lcore.h"
#include "mp.h"

void lmp_open_worker(lua_State *L, struct lmp_state *S);

/* Listeners shared by the workers (Windows' reuseport, where the system
 * has no SO_REUSEPORT: mp_share_new): one per address in this state's
 * record (a state that is no worker has its own). lmp_share_listen finds
 * the one listening on a (port > 0) or makes it (a socket bound to a,
 * listening with backlog), counts the caller as a user and gives it a
 * handle of its own on the socket (*fd: sockname, options; closed as any
 * socket); 0 or an MP_E* code (nothing then held). The last user to
 * lmp_share_leave closes the listener. */
struct lmp_share;
int lmp_share_listen(lua_State *L, const struct mp_addr *a, int backlog,
                     int reuseaddr, struct lmp_share **out, mp_handle_t *fd);
struct mp_share *lmp_share_get(struct lmp_share *x);
void lmp_share_leave(struct lmp_share *x);

#endif
