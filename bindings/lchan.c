/* lchan.c: channels (mp.channel), and the park/wake primitives the Lua
 * side (mp.select, lua/moonport/sync.lua) builds on.
 *
 * A channel is a userdata: its buffered values in a table (user value 1,
 * buf[head..tail]) and its waiters in two FIFOs each way. A task waiting
 * in recv or send from its own coroutine or one inside it (the common
 * case) is parked on an lmp_wq, linked through its own record: it costs
 * nothing but its suspended C frame, which holds its place in line (a
 * ticket, at 1), the channel (2) and the value it sends or is handed (3).
 * The rarer waiters (mp.select's arms, the main program, which cannot
 * yield) are Lua records { task, co, ticket, value, done, closed, skipped
 * [, group, ch, arm] } in a table (user value 2 receivers, 3 senders);
 * the tickets keep the two in one order. A hand-over takes the waiter
 * off, gives it the value (or takes the sender's) and readies its task. A
 * woken waiter returns what it was handed even if it is cancelled or
 * times out before it runs (the interruption applies to its next
 * suspension), so a value sent with `true` has exactly one owner. A
 * waiter that leaves without a hand-over (cancel, timeout, its coroutine
 * abandoned) is taken off in O(1); a receiver whose coroutine is closed or
 * abandoned after a hand-over passes the value on (recv_leave, its
 * frame's cleanup). A hand-over goes only to a waiter whose task still
 * waits for it (lmp_wq_stale, record_waits). */
#include "lchan.h"

#define LMP_CHAN "moonport.channel"

struct chan {
  lua_Integer cap, head, tail; /* buffered: buf[head..tail] */
  lua_Integer ticket;          /* the newest waiter's */
  struct lmp_wq recvq, sendq;  /* tasks parked in recv, send */
  int closed;
};

enum { BUF = 1, RECVERS = 2, SENDERS = 3 }; /* user values */

static struct chan *check(lua_State *L, const char *fname) {
  struct chan *c = luaL_testudata(L, 1, LMP_CHAN);
  if (!c)
    luaL_error(L, "bad argument #1 to '%s' (channel expected)", fname);
  return c;
}

static int l_channel(lua_State *L) {
  lua_Integer cap = 0;
  if (!lua_isnoneornil(L, 1)) {
    if (!lua_isinteger(L, 1) || (cap = lua_tointeger(L, 1)) < 0)
      return luaL_error(L, "bad argument #1 to 'channel' (non-negative "
                           "integer expected)");
  }
  struct chan *c = lua_newuserdatauv(L, sizeof *c, 3);
  c->cap = cap;
  c->head = 1;
  c->tail = 0;
  c->ticket = 0;
  c->closed = 0;
  lmp_wq_init(&c->recvq);
  lmp_wq_init(&c->sendq);
  luaL_setmetatable(L, LMP_CHAN);
  for (int i = BUF; i <= SENDERS; i++) {
    lua_newtable(L);
    lua_setiuservalue(L, -2, i);
  }
  return 1;
}

/* A parked waiter's place in line. */
static lua_Integer task_ticket(const struct lmp_task *t) {
  return lua_tointeger(lmp_wait_co(t), 1);
}

/* Whether the record on top still waits: not a select arm whose group
 * another channel claimed, and its task suspended where it queued it
 * (as l_waiting below). One that does not is marked skipped (its
 * coroutine, if resumed, gets back in line). */
static int record_waits(lua_State *L, struct lmp_state *S) {
  if (lua_getfield(L, -1, "group") == LUA_TTABLE) {
    int done = lua_getfield(L, -1, "done") != LUA_TNIL &&
               lua_toboolean(L, -1);
    lua_pop(L, 2);
    if (done) return 0;
  } else {
    lua_pop(L, 1);
  }
  lua_getfield(L, -1, "task");
  struct lmp_task *t = luaL_checkudata(L, -1, LMP_TASK);
  lua_getfield(L, -2, "co");
  lua_State *co = lua_isnil(L, -1) ? t->co : lua_tothread(L, -1);
  lua_pop(L, 2);
  if (t->is_main || (t->wait && lmp_wait_co(t) == co && t != S->current))
    return 1;
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "skipped");
  return 0;
}

/* Removes q[i] from the array at qi (as table.remove). */
static void queue_remove(lua_State *L, int qi, lua_Integer i) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, qi);
  for (; i < n; i++) {
    lua_rawgeti(L, qi, i + 1);
    lua_rawseti(L, qi, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, qi, n);
}

/* The oldest waiter on one side (RECVERS or SENDERS) that will return
 * what it is handed: 0, none; 1, task *tp (still queued); 2, a record,
 * pushed (still first in its table). Waiters that will not are dropped
 * on the way. ci: the channel's index. */
static int peek(lua_State *L, struct lmp_state *S, struct chan *c, int ci,
                int side, struct lmp_task **tp) {
  struct lmp_wq *q = side == SENDERS ? &c->sendq : &c->recvq;
  for (;;) {
    struct lmp_task *t = q->head;
    if (t && lmp_wq_stale(S, t)) {
      lmp_wq_remove(t);
      continue;
    }
    lua_getiuservalue(L, ci, side);
    if (lua_rawgeti(L, -1, 1) == LUA_TNIL) {
      lua_pop(L, 2);
      *tp = t;
      return t ? 1 : 0;
    }
    if (t) {
      lua_getfield(L, -1, "ticket");
      lua_Integer rt = lua_tointeger(L, -1);
      lua_pop(L, 1);
      if (task_ticket(t) < rt) {
        lua_pop(L, 2);
        *tp = t;
        return 1;
      }
    }
    if (record_waits(L, S)) {
      lua_remove(L, -2);
      return 2;
    }
    lua_pop(L, 1);
    queue_remove(L, lua_gettop(L), 1);
    lua_pop(L, 1);
  }
}

/* Takes the record on top (first in its table) off and pops it; with
 * `closed`, marks it so; else marks it done (its value set to the one at
 * vi, for a receiver: vi 0 for a sender), and readies its task. A select
 * arm claims its group. */
static void record_wake(lua_State *L, struct lmp_state *S, int ci,
                        int side, int closed, int vi) {
  int r = lua_gettop(L);
  lua_getiuservalue(L, ci, side);
  queue_remove(L, r + 1, 1);
  lua_pop(L, 1);
  if (lua_getfield(L, r, "group") == LUA_TTABLE) {
    lua_pushvalue(L, r);
    lua_setfield(L, -2, "done");
  }
  lua_pop(L, 1);
  if (vi) {
    lua_pushvalue(L, vi);
    lua_setfield(L, r, "value");
  }
  lua_pushboolean(L, 1);
  lua_setfield(L, r, closed ? "closed" : "done");
  lua_getfield(L, r, "task");
  lmp_wake(S, lua_touserdata(L, -1));
  lua_settop(L, r - 1);
}

/* A receiver whose coroutine is abandoned or closed after a hand-over
 * (its frame's cleanup: run with the channel and the value) passes the
 * value on: to the next receiver, or first in line in the buffer. Also
 * core.chan_pass_on(ch, v), for mp.select. */
static int recv_leave(lua_State *L);

/* Hands the value at vi to the receiver peek found. */
static void hand(lua_State *L, struct lmp_state *S, int ci, int kind,
                 struct lmp_task *t, int vi) {
  if (kind == 2) {
    record_wake(L, S, ci, RECVERS, 0, vi);
    return;
  }
  lua_State *co = lmp_wait_co(t);
  lua_checkstack(co, 2); /* within its parked frame: cannot fail */
  lua_pushvalue(L, vi);
  lua_xmove(L, co, 1);
  lua_replace(co, 3);
  lua_pushcfunction(co, recv_leave); /* no upvalue: allocates nothing */
  lua_replace(co, 1);
  t->cleanup = 1;
  lmp_wq_wake(S, t, 1);
}

/* Pushes the value of the sender peek found (a record stays under it). */
static void sender_value(lua_State *L, int kind, struct lmp_task *t) {
  if (kind == 2) {
    lua_getfield(L, -1, "value");
    return;
  }
  lua_State *co = lmp_wait_co(t);
  lua_checkstack(co, 1);
  lua_pushvalue(co, 3);
  lua_xmove(co, L, 1);
}

static int recv_leave(lua_State *L) {
  struct lmp_state *S = lmp_getstate(L);
  struct chan *c = luaL_checkudata(L, 1, LMP_CHAN);
  struct lmp_task *t;
  lua_settop(L, 2);
  int kind = peek(L, S, c, 1, RECVERS, &t);
  if (kind) {
    hand(L, S, 1, kind, t, 2);
    return 0;
  }
  lua_getiuservalue(L, 1, BUF);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, c->head - 1);
  c->head--;
  return 0;
}

/* A receive that does not wait, the channel at 1: pushes what recv
 * returns and returns how many, or -1. */
static int try_recv(lua_State *L, struct lmp_state *S, struct chan *c) {
  struct lmp_task *t;
  int top = lua_gettop(L), kind;
  if (c->tail >= c->head) {
    lua_getiuservalue(L, 1, BUF);
    int b = lua_gettop(L);
    lua_rawgeti(L, b, c->head);
    if ((kind = peek(L, S, c, 1, SENDERS, &t))) {
      /* room again: the oldest waiting sender gets in (stored first:
       * out of memory leaves everything as it was) */
      sender_value(L, kind, t); /* a record: under the value */
      lua_rawseti(L, b, c->tail + 1);
      c->tail++;
      if (kind == 2) record_wake(L, S, 1, SENDERS, 0, 0);
      else lmp_wq_wake(S, t, 1);
    }
    lua_pushnil(L);
    lua_rawseti(L, b, c->head);
    c->head++;
    lua_remove(L, b);
    return lua_gettop(L) - top;
  }
  if ((kind = peek(L, S, c, 1, SENDERS, &t))) { /* rendezvous */
    sender_value(L, kind, t);
    if (kind == 2) {
      lua_insert(L, -2); /* the record on top */
      record_wake(L, S, 1, SENDERS, 0, 0);
    } else {
      lmp_wq_wake(S, t, 1);
    }
    return lua_gettop(L) - top;
  }
  if (c->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  return -1;
}

/* Waits as a record (the main program: it runs the loop, it does not
 * yield), the channel at 1 (and a sender's value at 2): returns what
 * recv or send returns. */
static int record_wait(lua_State *L, struct lmp_state *S, struct chan *c,
                       int side, const char *fname) {
  lua_settop(L, side == SENDERS ? 2 : 1);
  lua_createtable(L, 0, 6);
  int r = lua_gettop(L);
  lmp_push_task(L, S, S->main);
  lua_setfield(L, r, "task");
  lua_pushinteger(L, ++c->ticket);
  lua_setfield(L, r, "ticket");
  if (side == SENDERS) lua_pushvalue(L, 2); else lua_pushboolean(L, 0);
  lua_setfield(L, r, "value");
  lua_pushboolean(L, 0);
  lua_setfield(L, r, "done");
  lua_pushboolean(L, 0);
  lua_setfield(L, r, "closed");
  lua_getiuservalue(L, 1, side);
  lua_pushvalue(L, r);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  int done = 0, closed = 0;
  while (!done && !closed) {
    lua_settop(L, r);
    int n = lmp_wait(L, fname); /* the main program: it does not yield */
    done = lua_getfield(L, r, "done") != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (n && !done) {
      lua_getiuservalue(L, 1, side);
      int q = lua_gettop(L);
      for (lua_Integer i = 1; lua_rawgeti(L, q, i) != LUA_TNIL; i++) {
        int same = lua_rawequal(L, -1, r);
        lua_pop(L, 1);
        if (same) {
          queue_remove(L, q, i);
          break;
        }
      }
      lua_settop(L, r + n);
      if (n == 2) { /* an interruption, raised as it is */
        lua_pop(L, 1);
        return lua_error(L);
      }
      return luaL_error(L, "%s", lua_tostring(L, -1));
    }
    closed = lua_getfield(L, r, "closed") != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (side == SENDERS) {
    if (done) {
      lua_pushboolean(L, 1);
      return 1;
    }
    lua_pushnil(L);
    lua_pushliteral(L, "channel closed");
    lua_pushliteral(L, "closed");
    return 3;
  }
  if (done) {
    lua_getfield(L, r, "value");
    return 1;
  }
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/* Taken off as stale (lmp_wq_stale) and resumed through the wrappers:
 * back in line at the end, as it was (the frame as the park left it). */
static int again(lua_State *L, struct chan *c, struct lmp_wq *q,
                 lua_KFunction k, const char *fname) {
  lua_settop(L, 3);
  lua_pushinteger(L, ++c->ticket);
  lua_replace(L, 1);
  return lmp_park_wq(L, q, k, fname);
}

/* After a park: the frame is the ticket, the channel, the value. A
 * waiter taken off as stale gets back in line unless the channel
 * closed. */
static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  struct chan *c = lua_touserdata(L, 2);
  (void)status;
  int r = lmp_wq_resumed(L, ctx);
  /* resumed by another task after the hand-over: it still owns what it
   * got */
  if (r == LMP_WQ_HANDED || r == LMP_WQ_FOREIGN) {
    lua_pushvalue(L, 3);
    return 1;
  }
  if (r == LMP_WQ_AGAIN && !c->closed)
    return again(L, c, &c->recvq, recv_k, "recv");
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  struct chan *c = lua_touserdata(L, 2);
  (void)status;
  int r = lmp_wq_resumed(L, ctx);
  /* resumed by another task after the hand-over: its value was taken */
  if (r == LMP_WQ_HANDED || r == LMP_WQ_FOREIGN) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (r == LMP_WQ_AGAIN && !c->closed)
    return again(L, c, &c->sendq, send_k, "send");
  lua_pushnil(L);
  lua_pushliteral(L, "channel closed");
  lua_pushliteral(L, "closed");
  return 3;
}

/* Parks the running task on q, the channel at 1 and the value (nil for
 * a receiver) at 2. */
static int park(lua_State *L, struct chan *c, struct lmp_wq *q,
                lua_KFunction k, const char *fname) {
  lua_settop(L, 2);
  lua_pushinteger(L, ++c->ticket);
  lua_insert(L, 1);
  return lmp_park_wq(L, q, k, fname);
}

/* recv and send call nothing that could leave a spare Lua call frame in
 * the coroutine (64 bytes): a parked waiter holds only its own C
 * frame. */
static int recv(lua_State *L, struct lmp_state *S, struct chan *c) {
  int n = try_recv(L, S, c);
  if (n >= 0) return n;
  if (lmp_self(S)->is_main) return record_wait(L, S, c, RECVERS, "recv");
  return park(L, c, &c->recvq, recv_k, "recv");
}

static int send(lua_State *L, struct lmp_state *S, struct chan *c) {
  struct lmp_task *t;
  if (c->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "channel closed");
    lua_pushliteral(L, "closed");
    return 3;
  }
  int kind = peek(L, S, c, 1, RECVERS, &t);
  if (kind) {
    hand(L, S, 1, kind, t, 2);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (c->tail - c->head + 1 < c->cap) {
    lua_getiuservalue(L, 1, BUF);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, c->tail + 1);
    c->tail++;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (lmp_self(S)->is_main) return record_wait(L, S, c, SENDERS, "send");
  return park(L, c, &c->sendq, send_k, "send");
}

static int l_recv(lua_State *L) {
  struct chan *c = check(L, "recv");
  lua_settop(L, 1);
  return recv(L, lmp_state(L), c);
}

static int l_send(lua_State *L) {
  struct chan *c = check(L, "send");
  lua_settop(L, 2);
  return send(L, lmp_state(L), c);
}

/* Wakes every waiter with the close's result. */
static int l_close(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct chan *c = check(L, "close");
  struct lmp_task *t;
  lua_settop(L, 1);
  if (c->closed) return 0;
  c->closed = 1;
  for (int side = RECVERS; side <= SENDERS; side++) {
    int kind;
    while ((kind = peek(L, S, c, 1, side, &t))) {
      if (kind == 1) lmp_wq_wake(S, t, 0);
      else record_wake(L, S, 1, side, 1, 0);
    }
  }
  return 0;
}

static int l_len(lua_State *L) {
  struct chan *c = lua_touserdata(L, 1);
  lua_pushinteger(L, c->tail - c->head + 1);
  return 1;
}

/* core.chan_try_recv(ch): true and what recv returns, or false. */
static int l_try_recv(lua_State *L) {
  struct chan *c = check(L, "select");
  lua_settop(L, 1);
  lua_pushboolean(L, 1);
  int n = try_recv(L, lmp_state(L), c);
  if (n < 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return n + 1;
}

/* core.chan_enqueue(ch, rec): rec waits to receive (mp.select). */
static int l_enqueue(lua_State *L) {
  struct chan *c = check(L, "select");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushinteger(L, ++c->ticket);
  lua_setfield(L, 2, "ticket");
  lua_getiuservalue(L, 1, RECVERS);
  lua_pushvalue(L, 2);
  lua_rawseti(L, 3, (lua_Integer)lua_rawlen(L, 3) + 1);
  return 0;
}

/* core.chan_dequeue(ch, rec): rec leaves, if still queued. */
static int l_dequeue(lua_State *L) {
  check(L, "select");
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, RECVERS);
  for (lua_Integer i = 1; lua_rawgeti(L, 3, i) != LUA_TNIL; i++) {
    int same = lua_rawequal(L, -1, 2);
    lua_pop(L, 1);
    if (same) {
      queue_remove(L, 3, i);
      break;
    }
  }
  return 0;
}

static int l_closed(lua_State *L) {
  lua_pushboolean(L, check(L, "select")->closed);
  return 1;
}

static int nothing_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L, (void)status, (void)ctx;
  return 0;
}

/* core.park([cleanup]): cleanup runs if the coroutine that parks is
 * abandoned (see l_abandon), so an object can take its waiter back. */
static int l_park(lua_State *L) {
  lua_settop(L, 1);
  if (lua_isnil(L, 1)) return lmp_park(L, nothing_k, "park");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  return lmp_park_cleanup(L, nothing_k, "park");
}

static int l_wake(lua_State *L) {
  lmp_wake(lmp_state(L), luaL_checkudata(L, 1, LMP_TASK));
  return 0;
}

/* core.waiting(task[, co]): is task suspended on co's park (by default
 * its own coroutine's), so that what is
 * handed to co's waiter will be returned? Not if a resume that bypasses
 * the coroutine wrappers (one saved before moonport was loaded, or a C
 * library's lua_resume) swallowed co's suspension: the task ran on. The
 * main context parks without yielding: always. */
static int l_waiting(lua_State *L) {
  struct lmp_task *t = luaL_checkudata(L, 1, LMP_TASK);
  lua_State *co = lua_isnoneornil(L, 2) ? t->co : lua_tothread(L, 2);
  lua_pushboolean(L, t->is_main || (t->wait && lmp_wait_co(t) == co &&
                                    t != lmp_state(L)->current));
  return 1;
}

/* core.self(): the running task and, if the caller is a coroutine inside
 * it rather than its own, that coroutine (a waiter's record keeps it only
 * then: a smaller table). */
static int l_self(lua_State *L) {
  struct lmp_task *t = lmp_self(lmp_state(L));
  lmp_push_task(L, lmp_state(L), t);
  if (t->is_main || L == t->co) return 1;
  lua_pushthread(L);
  return 2;
}

/* A channel is collected only once no task waits in it (a waiter's frame
 * holds it), but for one whose park a foreign resume swallowed, whose
 * coroutine went first: it lets go of the queue. */
static int chan_gc(lua_State *L) {
  struct chan *c = lua_touserdata(L, 1);
  while (c->recvq.head) lmp_wq_remove(c->recvq.head);
  while (c->sendq.head) lmp_wq_remove(c->sendq.head);
  return 0;
}

void lmp_open_chan(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"park", l_park}, {"wake", l_wake},
    {"waiting", l_waiting}, {"self", l_self}, {"channel", l_channel},
    {"chan_try_recv", l_try_recv}, {"chan_enqueue", l_enqueue},
    {"chan_dequeue", l_dequeue}, {"chan_closed", l_closed},
    {"chan_pass_on", recv_leave}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__len", l_len}, {"__gc", chan_gc}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
    {"send", l_send}, {"recv", l_recv}, {"close", l_close}, {NULL, NULL}};
  lmp_new_class(L, S, LMP_CHAN, meta, methods);
  lua_setfield(L, -2, "Channel");
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
