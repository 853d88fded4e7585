/* lsched.c: the scheduler: resumes ready tasks between loop turns (the
 * hook lmp_step calls), ends them (results kept for join, failures nobody
 * joins reported at once), spawns and cancels them, and runs until every
 * task has ended, cancelling them on a deadlock. */
#include <stdio.h>
#include <string.h>

#include "lsched.h"

/* Wakes every task joining t: those on its joiner list, then what the
 * waiters table maps t to: { the main context, mp.select watchers }. */
static void wake_joiners(lua_State *L, struct lmp_state *S,
                         struct lmp_task *t) {
  lmp_wake_joiners(S, t);
  t->joined_by = 0;
  if (!t->has_joiners) return;
  t->has_joiners = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->waiters);
  lmp_push_task(L, S, t);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lmp_wake(S, luaL_checkudata(L, -1, LMP_TASK));
      lua_pop(L, 1);
    }
    lmp_push_task(L, S, t);
    lua_pushnil(L);
    lua_rawset(L, -4);
  }
  lua_pop(L, 2);
}

static void finish(struct lmp_state *S, struct lmp_task *t) {
  lua_State *L = S->L;
  lmp_forget_wait(L, S, t);
  /* Readied by sleep(0) just before a yield that never reached the
   * scheduler (it failed in a coroutine wrapper): once unanchored, a
   * queued task would be freed under the queue. */
  if (t->status == LMP_READY) lmp_ready_remove(S, t);
  lmp_task_release_ops(S, t);
  t->status = LMP_DONE;
  S->ntasks--;
  wake_joiners(L, S, t);
  lmp_unanchor(L, S, t);
}

static int traceback(lua_State *L) {
  luaL_traceback(L, lua_touserdata(L, 1), lua_touserdata(L, 2), 0);
  return 1;
}

/* What lua.c prints for an error object that is not a string. */
static int describe(lua_State *L) {
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return 1;
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

/* Prints a failure nobody is waiting for, at once, with its traceback.
 * The error stays as it is on co's stack, for a later join; a __tostring
 * that raises is reported, never propagated. */
static void report(struct lmp_state *S, struct lmp_task *t) {
  lua_State *L = S->L, *co = t->co;
  int top = lua_gettop(L), type = lua_type(co, -1);
  if (type == LUA_TSTRING && strcmp(lua_tostring(co, -1), "cancelled") == 0)
    return; /* asked for */
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    lua_tostring(L, -1); /* the copy: a number becomes its text */
  } else {
    lua_pushcfunction(L, describe);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      lua_pop(L, 1);
      lua_pushfstring(L, "(error object is a %s value; its __tostring "
                         "raised an error)", lua_typename(L, type));
    }
  }
  /* The traceback needs memory: without it, the message alone. */
  const char *msg = lua_tostring(L, -1);
  lua_pushcfunction(L, traceback);
  lua_pushlightuserdata(L, co);
  lua_pushlightuserdata(L, (void *)msg);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK)
    fprintf(stderr, "moonport: error in task: %s\n", lua_tostring(L, -1));
  else
    fprintf(stderr, "moonport: error in task: %s\n", msg);
  fflush(stderr);
  lua_settop(L, top);
  t->reported = 1;
  S->unhandled++;
}

static void fail(struct lmp_state *S, struct lmp_task *t) {
  lua_State *L = S->L, *co = t->co;
  int st;
  t->failed = 1;
  if (!t->watched && !t->has_joiners && !t->joined_by) report(S, t);
  /* Lua does not unwind a failed coroutine: closing it runs its pending
   * to-be-closed variables. It leaves the error (or a newer one raised by
   * a __close handler) at index 1; a yield-shaped failure leaves nothing,
   * so keep a copy. */
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
  lmp_push_task(L, S, t); /* back at co's index 1 (lmp_spawn) */
#if LUA_VERSION_RELEASE_NUM >= 50406
  st = lua_closethread(co, L);
#else
  st = lua_resetthread(co);
#endif
  if (st == LUA_OK) {
    lua_settop(co, 0);
    lua_xmove(L, co, 2); /* the task, the error */
    lua_insert(co, 1);
  } else {
    lua_settop(co, 1);
    lua_xmove(L, co, 1);
    lua_insert(co, 1); /* the task, the newer error */
    lua_pop(L, 1);
  }
  finish(S, t);
}

static void resume_task(struct lmp_state *S, struct lmp_task *t) {
  lua_State *co = t->co;
  int nargs = 0, nres = 0, st;
  if (t->status == LMP_NEW) {
    if (t->cancel) { /* cancelled before its first turn: never runs */
      lua_settop(co, 1); /* the task itself (lmp_spawn) */
      lua_pushliteral(co, "cancelled");
      t->failed = 1;
      finish(S, t);
      return;
    }
    nargs = lua_gettop(co) - 2; /* below the body: the task */
  }
  struct lmp_task *prev = S->current;
  t->status = LMP_RUNNING;
  S->current = t;
  S->running = co;
  st = lua_resume(co, S->L, nargs, &nres);
  S->current = prev;
  S->running = prev ? prev->co : NULL;
  if (st == LUA_YIELD) {
    if (nres == 1 && lua_touserdata(co, -1) == LMP_SENTINEL) {
      lua_pop(co, 1);
      return; /* waiting on an op or parked */
    }
    /* A bare coroutine.yield at the task's top level: like the main chunk
     * of lua, a task is not a coroutine the script may yield from. */
    lua_pop(co, nres);
    lua_pushliteral(co, "attempt to yield from outside a coroutine");
    st = LUA_ERRRUN;
  }
  if (st == LUA_OK) { /* co's stack: the task, the results */
    finish(S, t);
  } else {
    fail(S, t);
  }
}

/* Runs the tasks ready now; those readied meanwhile run next turn. Each
 * task leaves the queue only when its turn comes, so an error escaping
 * (out of memory) leaves the rest queued rather than lost. */
static void run_ready(struct lmp_state *S) {
  struct lmp_task *last = S->ready_tail, *t;
  while ((t = S->ready_head)) {
    S->ready_head = t->next;
    if (!S->ready_head) S->ready_tail = NULL;
    resume_task(S, t);
    if (t == last) break;
  }
}

/* Spawns the function at index fidx with the nargs values after it (all
 * left in place) and pushes the task. */
struct lmp_task *lmp_spawn(lua_State *L, struct lmp_state *S, int fidx,
                           int nargs) {
  struct lmp_task *t = lmp_new_task(L, S);
  lua_State *co = lua_newthread(L);
  t->co = co;
  /* The task stays at index 1 of co's stack, below the body and later
   * its results or error: co keeps the task alive, and lmp_is_task_co
   * finds it there once co has ended. */
  luaL_checkstack(co, nargs + 2, "too many arguments to spawn");
  lua_pushvalue(L, -2);
  lua_xmove(L, co, 1);
  for (int i = 0; i <= nargs; i++) lua_pushvalue(L, fidx + i);
  lua_xmove(L, co, nargs + 1);
  t->status = LMP_NEW;
  lua_pushvalue(L, -2);
  lmp_anchor(L, S, t);
  lua_pop(L, 2); /* the task's copy, co */
  S->ntasks++;
  lmp_ready_push(S, t);
  return t;
}

void lmp_task_cancel(struct lmp_state *S, struct lmp_task *t) {
  if (t->status == LMP_DONE || t->is_main) return;
  t->cancel = 1;
  if (t->status == LMP_WAITING && t->op) lmp_interrupt_op(t->op);
  else if (t->status == LMP_PARKED && t != S->current) lmp_ready_push(S, t);
}

/* Cancels every live task (after a deadlock, so the state stays usable;
 * a worker asked to stop). */
void lmp_cancel_all(struct lmp_state *S) {
  lua_State *L = S->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->anchors);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    struct lmp_task *t = luaL_testudata(L, -1, LMP_TASK);
    if (t) lmp_task_cancel(S, t);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* What the deadlocked tasks hold (mp.lock, mp.semaphore: the function
 * core.on_deadlock installed returns a line per object), asked before the
 * cancels release everything and kept for lmp_push_deadlock. Protected:
 * out of memory costs only the details, never the cancels. Keys are
 * addresses, so clearing the last report allocates nothing. */
static const char describe_key = 0, held_key = 0;

static int ask_holders(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &describe_key) != LUA_TFUNCTION)
    return 0;
  lua_call(L, 0, 1);
  if (lua_type(L, -1) == LUA_TSTRING)
    lua_rawsetp(L, LUA_REGISTRYINDEX, &held_key);
  return 0;
}

static void describe_holders(lua_State *L) {
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &held_key);
  lua_pushcfunction(L, ask_holders);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* Runs until every task has ended; 0, or -1 on deadlock, after which the
 * deadlocked tasks have been cancelled and run to their end. */
int lmp_run_all(struct lmp_state *S) {
  while (S->ntasks > 0) {
    if (lmp_step(S, 1)) continue;
    int n = S->ntasks;
    describe_holders(S->L);
    for (int tries = 0; S->ntasks > 0 && tries < 3; tries++) {
      lmp_cancel_all(S);
      while (lmp_step(S, 1)) {}
    }
    S->deadlocked = n;
    return -1;
  }
  return 0;
}

int lmp_push_deadlock(lua_State *L, struct lmp_state *S) {
  lua_pushfstring(L, "deadlock: %d task(s) waited for each other (a join, "
                     "channel, lock, semaphore or event) with no operation "
                     "in flight; they were cancelled",
                  S->deadlocked ? S->deadlocked : S->ntasks);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &held_key) == LUA_TSTRING) {
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  } else {
    lua_pop(L, 1);
  }
  return -1;
}

/* core.unjoined(t): t failed while an mp.select watched it (so its
 * failure was not reported) and that select returned another arm, or
 * none: reported now, as if nobody had joined it. */
static int l_unjoined(lua_State *L) {
  struct lmp_task *t = luaL_checkudata(L, 1, LMP_TASK);
  if (t->status == LMP_DONE && t->failed && !t->joined && !t->reported &&
      !t->watched && !t->has_joiners && !t->joined_by)
    report(lmp_state(L), t);
  return 0;
}

/* core.on_deadlock(fn): fn() returns what the deadlocked tasks hold (a
 * string, or nil), asked when a deadlock is found. */
static int l_on_deadlock(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &describe_key);
  return 0;
}

void lmp_open_sched(lua_State *L, struct lmp_state *S) {
  S->run_ready = run_ready;
  lua_pushcfunction(L, l_on_deadlock);
  lua_setfield(L, -2, "on_deadlock");
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_unjoined, 1);
  lua_setfield(L, -2, "unjoined");
}
