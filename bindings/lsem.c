/* lsem.c: mp.semaphore and mp.lock (a semaphore of one that knows its
 * owner); `with` and the deadlock report are in lua/moonport/sync.lua.
 *
 * A semaphore is a userdata: count permits, holders[task] = permits it
 * holds (user value 1) and its waiters in FIFO order. A task waiting from
 * its own coroutine or one inside it is parked on an lmp_wq through its
 * own record (its frame: a ticket, the semaphore, nothing): it costs no
 * memory. The main program, which cannot yield, waits as a record {
 * task, ticket, st } (user value 2; its holders entry made before it is
 * queued), the tickets keeping one order. A release hands the permit
 * straight to the first waiter that will return (no barging), and a
 * hand-over wins over a cancel or timeout that arrives before the waiter
 * runs, so it returns holding the permit. A parked task handed a permit
 * counts in `pending` until it runs and enters holders (allocating
 * nothing in the release; out of memory there passes the permit on and
 * raises); one whose coroutine is abandoned or closed first passes it on
 * (sem_leave, its frame's cleanup), as does one resumed by another task
 * ("operation abandoned"). A waiter that leaves any other way (cancel,
 * timeout) is taken off in O(1), holding nothing. */
#include "lsem.h"

#define LMP_SEM "moonport.semaphore"
#define LMP_LOCK "moonport.lock"

struct sem {
  lua_Integer count;
  lua_Integer pending; /* handed to parked tasks that have not run */
  lua_Integer revoked; /* of those, taken back by another's release */
  lua_Integer ticket;  /* the newest waiter's */
  struct lmp_wq q;
  int lock;
};

enum { HOLDERS = 1, RECORDS = 2 }; /* user values */

/* The semaphore (or lock) at 1, or the argument error naming fname. */
static struct sem *check(lua_State *L, int lock, const char *fname) {
  struct sem *s = luaL_testudata(L, 1, lock ? LMP_LOCK : LMP_SEM);
  if (!s)
    luaL_error(L, "bad argument #1 to '%s' (%s expected, got %s)", fname,
               lock ? "lock" : "semaphore", luaL_typename(L, 1));
  return s;
}

/* Either kind, for the functions sync.lua calls. */
static struct sem *either(lua_State *L) {
  struct sem *s = luaL_testudata(L, 1, LMP_SEM);
  return s ? s : luaL_checkudata(L, 1, LMP_LOCK);
}

/* core.sem_new(n, is_lock) */
static int l_new(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  int lock = lua_toboolean(L, 2);
  struct sem *s = lua_newuserdatauv(L, sizeof *s, 2);
  s->count = n;
  s->pending = s->revoked = 0;
  s->ticket = 0;
  s->lock = lock;
  lmp_wq_init(&s->q);
  luaL_setmetatable(L, lock ? LMP_LOCK : LMP_SEM);
  lua_newtable(L);
  lua_setiuservalue(L, -2, HOLDERS);
  lua_newtable(L);
  lua_setiuservalue(L, -2, RECORDS);
  return 1;
}

/* holders[task] for the task at ti (0 if none), the semaphore at 1. */
static lua_Integer held(lua_State *L, int ti) {
  ti = lua_absindex(L, ti);
  lua_getiuservalue(L, 1, HOLDERS);
  lua_pushvalue(L, ti);
  lua_rawget(L, -2);
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 2);
  return n;
}

/* holders[task] = n (nil when 0 and drop), the task at ti. */
static void set_held(lua_State *L, int ti, lua_Integer n, int drop) {
  ti = lua_absindex(L, ti);
  lua_getiuservalue(L, 1, HOLDERS);
  lua_pushvalue(L, ti);
  if (n || !drop) lua_pushinteger(L, n); else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static void push_self(lua_State *L, struct lmp_state *S) {
  lmp_push_task(L, S, lmp_self(S));
}

static int sem_leave(lua_State *L);

/* Raises msg with the position of the function `level` levels up (1:
 * the caller of the method; 2: of `with`, which calls sem_take). */
static int raise_at(lua_State *L, int level, const char *msg) {
  luaL_where(L, level);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Removes q[i] from the array at q (as table.remove). */
static void remove_at(lua_State *L, int q, lua_Integer i) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, q);
  for (; i < n; i++) {
    lua_rawgeti(L, q, i + 1);
    lua_rawseti(L, q, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, q, n);
}

/* A permit comes back (the semaphore at 1): to the first waiter that
 * will return it, or to the count. Allocates nothing. */
static void give_back(lua_State *L, struct lmp_state *S, struct sem *s) {
  for (;;) {
    struct lmp_task *t = s->q.head;
    if (t && lmp_wq_stale(S, t)) {
      lmp_wq_remove(t);
      continue;
    }
    lua_getiuservalue(L, 1, RECORDS);
    int q = lua_gettop(L);
    if (lua_rawgeti(L, q, 1) == LUA_TNIL ||
        (t && (lua_getfield(L, -1, "ticket"),
               lua_tointeger(lmp_wait_co(t), 1) < lua_tointeger(L, -1)))) {
      lua_settop(L, q - 1);
      if (!t) break;
      lua_State *co = lmp_wait_co(t);
      lua_checkstack(co, 1); /* within its parked frame: cannot fail */
      lua_pushcfunction(co, sem_leave); /* no upvalue: allocates nothing */
      lua_replace(co, 1);
      t->cleanup = 1;
      s->pending++;
      lmp_wq_wake(S, t, 1);
      return;
    }
    /* a record (the main program's, which always waits): done, and its
     * holders entry, made before it queued, counts the permit */
    lua_settop(L, q + 1);
    remove_at(L, q, 1);
    lua_pushliteral(L, "done");
    lua_setfield(L, q + 1, "st");
    lua_getfield(L, q + 1, "task");
    set_held(L, -1, held(L, -1) + 1, 0);
    lmp_wake(S, lua_touserdata(L, -1));
    lua_settop(L, q - 1);
    return;
  }
  s->count++;
}

/* A parked task handed a permit runs or leaves: whether the permit is
 * still its own (a release by a task holding none may take it back
 * before it runs, as from any holder: l_release). */
static int still_handed(struct sem *s) {
  s->pending--;
  if (!s->revoked) return 1;
  s->revoked--;
  return 0;
}

/* A parked task handed a permit whose coroutine is abandoned or closed
 * before it ran (its frame's cleanup, run with the semaphore): it passes
 * the permit on. */
static int sem_leave(lua_State *L) {
  struct sem *s = either(L);
  if (still_handed(s)) give_back(L, lmp_getstate(L), s);
  return 0;
}

/* holders[running task] += 1 (protected: see acquire_k). */
static int add_self(lua_State *L) {
  struct lmp_state *S = lmp_getstate(L);
  push_self(L, S);
  set_held(L, -1, held(L, -1) + 1, 0);
  return 0;
}

/* Removes record r from the records, if there. */
static void unqueue(lua_State *L, int r) {
  lua_getiuservalue(L, 1, RECORDS);
  int q = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, q);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, q, i);
    int same = lua_rawequal(L, -1, r);
    lua_pop(L, 1);
    if (same) {
      remove_at(L, q, i);
      break;
    }
  }
  lua_settop(L, q - 1);
}

/* The main program waits as a record: it runs the loop, never yields. */
static int record_wait(lua_State *L, struct lmp_state *S, struct sem *s,
                       const char *fname, int level) {
  lua_settop(L, 1);
  push_self(L, S); /* 2: the main task */
  set_held(L, 2, held(L, 2), 0); /* its entry: a grant allocates nothing */
  lua_createtable(L, 0, 3);
  int r = lua_gettop(L);
  lua_pushvalue(L, 2);
  lua_setfield(L, r, "task");
  lua_pushinteger(L, ++s->ticket);
  lua_setfield(L, r, "ticket");
  lua_pushboolean(L, 0);
  lua_setfield(L, r, "st");
  lua_getiuservalue(L, 1, RECORDS);
  lua_pushvalue(L, r);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  for (;;) {
    lua_settop(L, r);
    int n = lmp_wait(L, fname);
    lua_getfield(L, r, "st");
    int done = lua_type(L, -1) == LUA_TSTRING;
    lua_pop(L, 1);
    if (done) break;
    if (n) { /* it leaves holding nothing */
      unqueue(L, r);
      if (held(L, 2) == 0) set_held(L, 2, 0, 1);
      if (n == 2) {
        lua_pop(L, 1);
        return lua_error(L);
      }
      return raise_at(L, level, lua_tostring(L, -1));
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int acquire(lua_State *L, struct lmp_state *S, struct sem *s,
                   const char *fname, int level);

static int acquire_k(lua_State *L, int status, lua_KContext ctx) {
  struct sem *s = lua_touserdata(L, 2);
  (void)status;
  int r = lmp_wq_resumed(L, ctx);
  if (r == LMP_WQ_FOREIGN) {
    /* resumed by another task after the hand-over: "operation
     * abandoned", the permit passed on (it never ends up held by a task
     * that did not wait for it) */
    if (still_handed(s)) {
      lua_pushvalue(L, 2);
      lua_replace(L, 1);
      give_back(L, lmp_state(L), s);
    }
    return lmp_abandoned(L);
  }
  if (r != LMP_WQ_HANDED) {
    /* taken off as stale, resumed through the wrappers: back in line */
    lua_settop(L, 3);
    lua_pushinteger(L, ++s->ticket);
    lua_replace(L, 1);
    return lmp_park_wq(L, &s->q, acquire_k, s->lock ? "lock" : "acquire");
  }
  if (!still_handed(s)) { /* released meanwhile: it returns holding none */
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushcfunction(L, add_self);
  lua_pushvalue(L, 2);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) { /* out of memory: passed on */
    lua_pushvalue(L, 2);
    lua_replace(L, 1);
    give_back(L, lmp_state(L), s);
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Waits for a permit (the semaphore at 1); returns true holding one, or
 * raises holding none. Calls nothing that could leave a spare Lua call
 * frame in the coroutine: a parked waiter holds only its C frame. */
static int acquire(lua_State *L, struct lmp_state *S, struct sem *s,
                   const char *fname, int level) {
  lua_settop(L, 1);
  if (s->count > 0 && !s->q.head) {
    lua_getiuservalue(L, 1, RECORDS);
    int none = lua_rawlen(L, -1) == 0;
    lua_pop(L, 1);
    if (none) {
      push_self(L, S);
      set_held(L, -1, held(L, -1) + 1, 0); /* first: out of memory here
                                               changes nothing */
      s->count--;
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  if (lmp_self(S)->is_main) return record_wait(L, S, s, fname, level);
  if (level > 1 && lmp_wq_refusal(L, fname))
    return raise_at(L, level, lua_tostring(L, -1));
  lua_pushinteger(L, ++s->ticket);
  lua_insert(L, 1);
  lua_settop(L, 3);
  return lmp_park_wq(L, &s->q, acquire_k, fname);
}

/* Lock: not reentrant. */
static int lock(lua_State *L, struct lmp_state *S, struct sem *s,
                const char *fname, int level) {
  push_self(L, S);
  if (held(L, -1) > 0)
    return raise_at(L, level, "lock: the lock is already held by this "
                              "task (locks are not reentrant)");
  return acquire(L, S, s, fname, level);
}

static int l_acquire(lua_State *L) {
  return acquire(L, lmp_state(L), check(L, 0, "acquire"), "acquire", 1);
}

static int l_lock(lua_State *L) {
  return lock(L, lmp_state(L), check(L, 1, "lock"), "lock", 1);
}

/* core.sem_take(obj): acquire (a lock's: lock) for `with`, its errors
 * blaming the caller of `with`. */
static int l_take(lua_State *L) {
  struct sem *s = either(L);
  if (s->lock) return lock(L, lmp_state(L), s, "with", 2);
  return acquire(L, lmp_state(L), s, "with", 2);
}

/* One permit less for the task at ti, if it holds one. */
static int drop_holder(lua_State *L, int ti) {
  lua_Integer n = held(L, ti);
  if (n <= 0) return 0;
  set_held(L, ti, n - 1, 1);
  return 1;
}

/* Pushes a task holding a permit and returns 1, or returns 0. */
static int a_holder(lua_State *L) {
  lua_getiuservalue(L, 1, HOLDERS);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_tointeger(L, -1) > 0) {
      lua_pop(L, 1);
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* Any task may release (the permit is taken from the caller's count,
 * else from another holder's, else from one handed to a waiter that has
 * not run yet); more releases than acquires raise. */
static int l_release(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct sem *s = check(L, 0, "release");
  lua_settop(L, 1);
  push_self(L, S);
  if (!drop_holder(L, 2)) {
    if (a_holder(L)) drop_holder(L, 3);
    else if (s->revoked < s->pending) s->revoked++;
    else
      return luaL_error(L, "release: semaphore released more times than "
                           "acquired");
  }
  give_back(L, S, s);
  return 0;
}

static int l_unlock(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct sem *s = check(L, 1, "unlock");
  lua_settop(L, 1);
  push_self(L, S);
  if (!drop_holder(L, 2))
    return luaL_error(L, a_holder(L) || s->pending
                             ? "unlock: the lock is held by another task"
                             : "unlock: the lock is not locked");
  give_back(L, S, s);
  return 0;
}

/* core.sem_drop(obj, task): the guard of `with` lets go (true if task
 * held a permit, which then goes to the next waiter). */
static int l_drop(lua_State *L) {
  struct sem *s = either(L);
  lua_settop(L, 2);
  int r = drop_holder(L, 2);
  if (r) give_back(L, lmp_state(L), s);
  lua_pushboolean(L, r);
  return 1;
}

static int l_available(lua_State *L) {
  lua_pushinteger(L, check(L, 0, "available")->count);
  return 1;
}

static int l_locked(lua_State *L) {
  lua_pushboolean(L, check(L, 1, "locked")->count == 0);
  return 1;
}

/* core.sem_report(obj): holders, and the waiting tasks in order (for
 * the deadlock report). */
static int l_report(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct sem *s = either(L);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, HOLDERS);
  lua_newtable(L);
  lua_Integer n = 0;
  for (struct lmp_task *t = s->q.head; t; t = t->next) {
    lmp_push_task(L, S, t);
    lua_rawseti(L, 3, ++n);
  }
  lua_getiuservalue(L, 1, RECORDS);
  for (lua_Integer i = 1; lua_rawgeti(L, 4, i) != LUA_TNIL; i++) {
    lua_getfield(L, -1, "task");
    lua_rawseti(L, 3, ++n);
    lua_pop(L, 1);
  }
  lua_settop(L, 3);
  return 2;
}

/* Never collected while a task waits (its frame holds it), but for one
 * whose park a foreign resume swallowed, whose coroutine went first. */
static int sem_gc(lua_State *L) {
  struct sem *s = lua_touserdata(L, 1);
  while (s->q.head) lmp_wq_remove(s->q.head);
  return 0;
}

void lmp_open_sem(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg meta[] = {{"__gc", sem_gc}, {NULL, NULL}};
  static const luaL_Reg sem_methods[] = {
    {"acquire", l_acquire}, {"release", l_release},
    {"available", l_available}, {NULL, NULL}};
  static const luaL_Reg lock_methods[] = {
    {"lock", l_lock}, {"unlock", l_unlock}, {"locked", l_locked},
    {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"sem_new", l_new}, {"sem_take", l_take}, {"sem_drop", l_drop},
    {"sem_report", l_report}, {NULL, NULL}};
  lmp_new_class(L, S, LMP_SEM, meta, sem_methods);
  lua_setfield(L, -2, "Semaphore");
  lmp_new_class(L, S, LMP_LOCK, meta, lock_methods);
  lua_setfield(L, -2, "Lock");
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
