/* lworker.c: what the workers of one process share (moonport --workers,
 * docs/workers.md): each worker is a lua_State with its own loop on its
 * own thread, and they share nothing but this record: their count and
 * named channels carrying the values mp.work copies (its encoding).
 *
 * A shared channel is a locked queue of encoded messages. A task that
 * finds it empty (recv) or full (send) counts itself in the channel's
 * waiters of its worker and sleeps on a timer op of its own loop; whoever
 * changes the channel wakes each worker with waiters there: its own
 * loop's directly (the timer ops are cancelled), another's through a post
 * to that loop, whose callback does the same on its thread. A woken task
 * tries again, so a message never belongs to a waiter that is gone (a
 * cancelled or timed-out task): it stays in the queue until a task
 * returns it. A state that is no worker (stock lua5.4, a host that did
 * not attach one) has a private record of one worker. */
#include <stdlib.h>
#include <string.h>

#include "mp_os.h"
#include "lwork.h"
#include "lworker.h"

#define LWORKER_LINK "moonport.worker"   /* registry: this state's link */
#define LWORKER_CHAN "moonport.shared_channel"

struct msg {
  struct msg *next;
  size_t len;
  char data[];
};

struct xchan {
  struct xchan *next;
  char *name;
  size_t namelen;
  lua_Integer cap, count;
  int closed;
  struct msg *head, *tail;
  unsigned *waiting; /* per worker: its tasks waiting here */
};

struct wlocal;

/* A worker's place in the record: the loop of the state attached to it. */
struct wslot {
  struct moonport_workers *w;
  struct mp_loop *loop;  /* NULL while no state is attached */
  struct wlocal *local;  /* the attached state's waiters (its thread's) */
  struct mp_op post;     /* wakes them from another thread */
  int posted;            /* post is queued on loop */
};

/* A listener the workers share (lmp_share_listen), by its address. */
struct lmp_share {
  struct lmp_share *next;
  struct moonport_workers *w;
  struct mp_share *sh;
  struct mp_addr addr; /* where it listens (its sockname) */
  int users;           /* server objects holding it */
};

struct moonport_workers {
  struct mp_os_mutex *lock; /* everything below and the channels */
  int n;
  struct wslot *slots;
  struct xchan *chans;
  struct lmp_share *shares;
};

/* A task waiting on a channel: its timer op owns this. */
struct wwait {
  struct mp_op *op;
  struct xchan *ch;
  struct wlocal *local; /* NULL once unlinked */
  struct wwait *prev, *next;
  int woken;
};

/* The state's link to its record (a userdata in the registry). */
struct wlocal {
  struct moonport_workers *w;
  int index, own; /* own: a private record, freed with the link */
  struct wwait *head;
};

struct moonport_workers *moonport_workers_new(int n) {
  if (n < 1) return NULL;
  struct moonport_workers *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->slots = calloc((size_t)n, sizeof *w->slots);
  if (!w->slots || mp_os_mutex_new(&w->lock) < 0) {
    free(w->slots);
    free(w);
    return NULL;
  }
  w->n = n;
  for (int i = 0; i < n; i++) w->slots[i].w = w;
  return w;
}

void moonport_workers_free(struct moonport_workers *w) {
  if (!w) return;
  for (struct lmp_share *x = w->shares, *next; x; x = next) {
    next = x->next; /* (every user is gone: their states closed) */
    mp_share_close(x->sh);
    free(x);
  }
  for (struct xchan *c = w->chans, *next; c; c = next) {
    next = c->next;
    for (struct msg *m = c->head, *mn; m; m = mn) {
      mn = m->next;
      free(m);
    }
    free(c->waiting);
    free(c->name);
    free(c);
  }
  mp_os_mutex_free(w->lock);
  free(w->slots);
  free(w);
}

/* ---- waking ---- */

/* On the loop's thread: every waiting task of this state tries again. */
static void wake_local(struct wlocal *l) {
  for (struct wwait *x = l->head; x; x = x->next) {
    if (x->woken) continue;
    x->woken = 1;
    mp_op_cancel(x->op); /* completes: the task retries */
  }
}

static void post_cb(struct mp_op *op) {
  struct wslot *s = op->data;
  mp_os_mutex_lock(s->w->lock);
  s->posted = 0;
  struct wlocal *l = s->local;
  mp_os_mutex_unlock(s->w->lock);
  if (l) wake_local(l);
}

/* Under the lock: wakes the workers with tasks waiting on c; returns
 * whether self (the caller's worker) has some, to wake after unlocking. */
static int notify(struct moonport_workers *w, struct xchan *c, int self) {
  int mine = 0;
  for (int i = 0; i < w->n; i++) {
    struct wslot *s = &w->slots[i];
    if (!c->waiting[i]) continue;
    if (i == self) {
      mine = 1;
    } else if (s->loop && !s->posted) {
      s->posted = 1;
      mp_loop_post(s->loop, &s->post);
    }
  }
  return mine;
}

/* Unlinks x (on its state's thread) and uncounts it. Idempotent. */
static void wait_unlink(struct wwait *x) {
  struct wlocal *l = x->local;
  if (!l) return;
  if (x->prev) x->prev->next = x->next; else l->head = x->next;
  if (x->next) x->next->prev = x->prev;
  x->local = NULL;
  mp_os_mutex_lock(l->w->lock);
  x->ch->waiting[l->index]--;
  mp_os_mutex_unlock(l->w->lock);
}

static void wait_cb(struct mp_op *op) {
  wait_unlink(op->owned);
  lmp_task_op_cb(op);
}

static int wait_done(lua_State *L, struct mp_op *op);

/* Under the lock, c found empty (recv) or full (send): counts the
 * caller among c's waiters, unlocks and suspends it until c changes;
 * then it tries again (wait_done). Stack: ch, value. */
static int wait_change(lua_State *L, struct wlocal *l, struct xchan *c,
                       const char *fname) {
  struct lmp_state *S = lmp_state(L);
  struct mp_op *op = mp_op_new(S->loop, wait_cb, NULL);
  struct wwait *x = op ? mp_loop_calloc(S->loop, 1, sizeof *x) : NULL;
  if (!x) {
    mp_os_mutex_unlock(l->w->lock);
    if (op) mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  c->waiting[l->index]++;
  mp_os_mutex_unlock(l->w->lock);
  x->op = op;
  x->ch = c;
  x->local = l;
  x->next = l->head;
  if (l->head) l->head->prev = x;
  l->head = x;
  mp_op_own(op, x, free);
  mp_op_prep_timer(op, INT64_C(1) << 62); /* until woken */
  lua_pushstring(L, fname); /* stack 3: what to try again */
  return lmp_await(L, op, wait_done, fname);
}

/* ---- the link ---- */

static int link_gc(lua_State *L) {
  struct wlocal *l = lua_touserdata(L, 1);
  struct moonport_workers *w = l->w;
  if (!w) return 0;
  /* The waiters' ops may still complete (the loop drains after this):
   * they find themselves unlinked. */
  mp_os_mutex_lock(w->lock);
  for (struct wwait *x = l->head; x; x = x->next) {
    x->ch->waiting[l->index]--;
    x->local = NULL;
  }
  l->head = NULL;
  struct wslot *s = &w->slots[l->index];
  s->local = NULL;
  s->loop = NULL; /* nobody posts to it any more */
  mp_os_mutex_unlock(w->lock);
  if (l->own) moonport_workers_free(w);
  l->w = NULL;
  return 0;
}

static struct wlocal *new_link(lua_State *L, struct moonport_workers *w,
                               int index, int own) {
  struct wlocal *l = lua_newuserdatauv(L, sizeof *l, 0);
  memset(l, 0, sizeof *l);
  l->w = w;
  l->index = index;
  l->own = own;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, link_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  struct wslot *s = &w->slots[index];
  mp_os_mutex_lock(w->lock);
  mp_op_init(&s->post, post_cb, s);
  s->posted = 0; /* a post left on a closed loop is gone with it */
  s->loop = moonport_loop(L);
  s->local = l;
  mp_os_mutex_unlock(w->lock);
  lua_setfield(L, LUA_REGISTRYINDEX, LWORKER_LINK);
  return l;
}

/* This state's link; a private record of one worker on first use. */
static struct wlocal *get_link(lua_State *L) {
  struct wlocal *l;
  if (lua_getfield(L, LUA_REGISTRYINDEX, LWORKER_LINK) == LUA_TUSERDATA) {
    l = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!l->w) luaL_error(L, "moonport: the state is closing");
    return l;
  }
  lua_pop(L, 1);
  struct moonport_workers *w = moonport_workers_new(1);
  if (!w) luaL_error(L, "not enough memory");
  return new_link(L, w, 0, 1);
}

int moonport_worker_attach(lua_State *L, struct moonport_workers *w,
                           int index) {
  if (!w || index < 1 || index > w->n || !moonport_loop(L)) return MP_EINVAL;
  int t = lua_getfield(L, LUA_REGISTRYINDEX, LWORKER_LINK);
  lua_pop(L, 1);
  if (t != LUA_TNIL) return MP_EBUSY;
  new_link(L, w, index - 1, 0);
  lmp_getstate(L)->shared_process = 1;
  return 0;
}

/* core.worker(): this worker's index and the count. */
static int l_worker(lua_State *L) {
  struct wlocal *l = get_link(L);
  lua_pushinteger(L, l->index + 1);
  lua_pushinteger(L, l->w->n);
  return 2;
}

/* ---- shared listeners ---- */

/* The same address: family, host and port (the bytes may differ in
 * padding). */
static int same_addr(const struct mp_addr *a, const struct mp_addr *b) {
  char ha[128], hb[128];
  int pa, pb;
  return mp_addr_format(a, ha, sizeof ha, &pa) ==
             mp_addr_format(b, hb, sizeof hb, &pb) &&
         pa == pb && strcmp(ha, hb) == 0;
}

/* Under the lock: a new listening socket on a, shared. */
static int share_new(struct moonport_workers *w, const struct mp_addr *a,
                     int backlog, int reuseaddr, struct lmp_share **out) {
  struct lmp_share *x = calloc(1, sizeof *x);
  mp_handle_t fd;
  int err;
  if (!x) return MP_ENOMEM;
  if ((err = mp_os_socket(mp_addr_family(a), MP_SOCK_STREAM, &fd)) < 0) {
    free(x);
    return err;
  }
  if ((reuseaddr && (err = mp_os_setsockopt(fd, MP_SO_REUSEADDR, 1)) < 0) ||
      (err = mp_os_bind(fd, a)) < 0 || (err = mp_os_listen(fd, backlog)) < 0 ||
      (err = mp_os_sockname(fd, &x->addr, 0)) < 0 ||
      (err = mp_share_new(fd, &x->sh)) < 0) {
    mp_os_close(fd);
    free(x);
    return err;
  }
  x->w = w;
  x->next = w->shares;
  w->shares = x;
  *out = x;
  return 0;
}

/* Under the lock: x, which nobody uses any more, leaves the record and
 * closes (under the lock: a listen on the address meanwhile finds the
 * port free; the accept thread joined here takes no workers' lock). The
 * caller frees x. */
static void share_drop(struct moonport_workers *w, struct lmp_share *x) {
  struct lmp_share **p = &w->shares;
  while (*p != x) p = &(*p)->next;
  *p = x->next;
  mp_share_close(x->sh);
}

int lmp_share_listen(lua_State *L, const struct mp_addr *a, int backlog,
                     int reuseaddr, struct lmp_share **out,
                     mp_handle_t *fd) {
  struct moonport_workers *w = get_link(L)->w;
  struct lmp_share *x = NULL, *unused = NULL;
  char host[128];
  int port, err = 0;
  mp_addr_format(a, host, sizeof host, &port);
  mp_os_mutex_lock(w->lock);
  if (port > 0) /* (port 0: a new port, as every listen on 0 gets) */
    for (x = w->shares; x && !same_addr(&x->addr, a); x = x->next) {}
  if (!x) err = share_new(w, a, backlog, reuseaddr, &x);
  if (!err && (err = mp_share_dup(x->sh, fd)) == 0)
    x->users++;
  else if (x && x->users == 0) /* new, made for nobody: before another
                                  listen can find it */
    share_drop(w, unused = x);
  mp_os_mutex_unlock(w->lock);
  free(unused);
  if (err) return err;
  *out = x;
  return 0;
}

struct mp_share *lmp_share_get(struct lmp_share *x) { return x->sh; }

void lmp_share_leave(struct lmp_share *x) {
  struct moonport_workers *w = x->w;
  mp_os_mutex_lock(w->lock);
  int last = --x->users == 0;
  if (last) share_drop(w, x);
  mp_os_mutex_unlock(w->lock);
  if (last) free(x);
}

/* ---- shared channels ---- */

struct xhandle {
  struct xchan *ch;
};

static struct xchan *check_chan(lua_State *L, struct wlocal **l) {
  struct xhandle *h = luaL_checkudata(L, 1, LWORKER_CHAN);
  *l = get_link(L);
  return h->ch;
}

/* core.shared_channel(name [, cap]): the channel named name in this
 * process's workers, made with capacity cap (default 1) by the first
 * call. */
static int l_shared_channel(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  int has_cap = !lua_isnoneornil(L, 2);
  lua_Integer cap = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, cap >= 1, 2, "positive integer expected");
  struct wlocal *l = get_link(L);
  struct moonport_workers *w = l->w;
  struct xhandle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->ch = NULL;
  luaL_setmetatable(L, LWORKER_CHAN);
  struct xchan *c, *made = calloc(1, sizeof *made);
  if (made) {
    made->name = malloc(len + 1);
    made->waiting = calloc((size_t)w->n, sizeof *made->waiting);
  }
  if (!made || !made->name || !made->waiting) {
    if (made) free(made->name), free(made->waiting);
    free(made);
    return luaL_error(L, "not enough memory");
  }
  mp_os_mutex_lock(w->lock);
  for (c = w->chans; c; c = c->next)
    if (c->namelen == len && memcmp(c->name, name, len) == 0) break;
  if (!c) {
    c = made;
    made = NULL;
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->namelen = len;
    c->cap = cap;
    c->next = w->chans;
    w->chans = c;
  }
  lua_Integer had = c->cap;
  mp_os_mutex_unlock(w->lock);
  if (made) free(made->name), free(made->waiting), free(made);
  if (has_cap && had != cap)
    return luaL_error(L, "bad argument #2 to 'shared_channel' (channel "
                         "'%s' exists with capacity %I)", name, had);
  h->ch = c;
  return 1;
}

static int xsend(lua_State *L);
static int xrecv(lua_State *L);

static int push_msg(lua_State *L) {
  struct msg *m = lua_touserdata(L, 1);
  lua_pushlstring(L, m->data, m->len);
  return 1;
}

/* A woken waiter tries again (its op was cancelled to wake it). */
static int wait_done(lua_State *L, struct mp_op *op) {
  mp_op_release(op);
  const char *fname = lua_tostring(L, 3);
  lua_settop(L, 2);
  return strcmp(fname, "send") == 0 ? xsend(L) : xrecv(L);
}

/* ch:send(v): true, or nil, "channel closed", "closed". */
static int xsend(lua_State *L) {
  struct wlocal *l;
  struct xchan *c = check_chan(L, &l);
  int bad;
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  const char *e = lmp_work_encode(L, 2, 1, &bad);
  if (e) return luaL_argerror(L, 2, e);
  size_t len;
  const char *bytes = lua_tolstring(L, -1, &len);
  struct msg *m = malloc(sizeof *m + len);
  if (!m) return luaL_error(L, "not enough memory");
  memcpy(m->data, bytes, len);
  m->len = len;
  m->next = NULL;
  lua_settop(L, 2);
  mp_os_mutex_lock(l->w->lock);
  if (c->closed) {
    mp_os_mutex_unlock(l->w->lock);
    free(m);
    lua_pushnil(L);
    lua_pushliteral(L, "channel closed");
    lua_pushliteral(L, "closed");
    return 3;
  }
  if (c->count >= c->cap) {
    free(m);
    return wait_change(L, l, c, "send");
  }
  if (c->tail) c->tail->next = m; else c->head = m;
  c->tail = m;
  c->count++;
  int mine = notify(l->w, c, l->index);
  mp_os_mutex_unlock(l->w->lock);
  if (mine) wake_local(l);
  lua_pushboolean(L, 1);
  return 1;
}

/* ch:recv(): the value, or nil, "closed" once closed and drained. */
static int xrecv(lua_State *L) {
  struct wlocal *l;
  struct xchan *c = check_chan(L, &l);
  lua_settop(L, 2);
  mp_os_mutex_lock(l->w->lock);
  struct msg *m = c->head;
  if (!m) {
    if (c->closed) {
      mp_os_mutex_unlock(l->w->lock);
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    return wait_change(L, l, c, "recv");
  }
  c->head = m->next;
  if (!c->head) c->tail = NULL;
  c->count--;
  int mine = notify(l->w, c, l->index);
  mp_os_mutex_unlock(l->w->lock);
  if (mine) wake_local(l);
  /* The message is ours now: its bytes go into Lua (protected) before it
   * is freed, so a memory error loses no memory. */
  lua_pushcfunction(L, push_msg);
  lua_pushlightuserdata(L, m);
  int st = lua_pcall(L, 1, 1, 0);
  free(m);
  if (st != LUA_OK) return lua_error(L);
  const char *p = lua_tostring(L, -1);
  lmp_work_decode(L, p, 1);
  return 1;
}

/* ch:close(): senders fail from now on; receivers get what is queued,
 * then nil, "closed". */
static int xclose(lua_State *L) {
  struct wlocal *l;
  struct xchan *c = check_chan(L, &l);
  mp_os_mutex_lock(l->w->lock);
  c->closed = 1;
  int mine = notify(l->w, c, l->index);
  mp_os_mutex_unlock(l->w->lock);
  if (mine) wake_local(l);
  return 0;
}

static int xlen(lua_State *L) {
  struct wlocal *l;
  struct xchan *c = check_chan(L, &l);
  mp_os_mutex_lock(l->w->lock);
  lua_Integer n = c->count;
  mp_os_mutex_unlock(l->w->lock);
  lua_pushinteger(L, n);
  return 1;
}

static int xtostring(lua_State *L) {
  struct xhandle *h = luaL_checkudata(L, 1, LWORKER_CHAN);
  lua_pushfstring(L, "moonport.shared_channel '%s': %p", h->ch->name,
                  (void *)h->ch);
  return 1;
}

void lmp_open_worker(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg meta[] = {
    {"__len", xlen}, {"__tostring", xtostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
    {"send", xsend}, {"recv", xrecv}, {"close", xclose}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"worker", l_worker}, {"shared_channel", l_shared_channel},
    {NULL, NULL}};
  lmp_new_class(L, S, LWORKER_CHAN, meta, methods);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
