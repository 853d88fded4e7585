/* ldeadline.c: the deadlines under mp.timeout. Each is a timer op on its
 * task's list (ltask.c interrupts the task while one that fired is live);
 * a guard object removes it when mp.timeout returns or its coroutine is
 * closed or collected. */
#include <string.h>

#include "ldeadline.h"

#define LMP_DEADLINE "moonport.deadline"

/* A deadline is a timer op on its task's list until its guard removes it
 * (mp.timeout returns, or the coroutine holding the guard is closed or
 * collected); it has fired when it is no longer in flight (a cancelled
 * one is orphaned, never left on the list). It interrupts the task only
 * while live (see interrupted_at). */
static void deadline_cb(struct mp_op *op) {
  struct lmp_task *t = op->data;
  int i = 0;
  if (!t) {
    mp_op_release(op);
    return;
  }
  struct lmp_side *dl = t->side; /* op is on it */
  while (i < dl->n && dl->d[i].op != op) i++;
  if (i == dl->n || !dl->d[i].live) return;
  dl->nexpired++;
  if (!t->joining && !t->queued && t->op && mp_op_inflight(t->op))
    lmp_interrupt_op(t->op);
  else if (t->status == LMP_PARKED) lmp_ready_push(lmp_op_state(op), t);
  else if (t->is_main) mp_loop_stop(mp_op_loop(op));
}

/* core.deadline_push(seconds) returns the deadline's guard: a userdata
 * naming it by id, whose user values (its task, the coroutine that
 * pushed it) live as long as it does, so that coroutine's address is not
 * reused while the deadline is on the list. */
static int l_deadline_push(lua_State *L) {
  struct lmp_state *S = lmp_state(L);
  struct lmp_task *t = lmp_self(S);
  luaL_checktype(L, 1, LUA_TNUMBER);
  lua_Number s = lua_tonumber(L, 1);
  luaL_argcheck(L, s >= 0, 1, "non-negative number expected");
  lua_KContext *id = lua_newuserdatauv(L, sizeof *id, 2);
  *id = 0;
  luaL_setmetatable(L, LMP_DEADLINE);
  lmp_push_task(L, S, t);
  lua_setiuservalue(L, -2, 1);
  lua_pushthread(L);
  lua_setiuservalue(L, -2, 2);
  if (!t->side || t->side->n == t->side->cap) {
    int cap = t->side && t->side->cap ? t->side->cap * 2 : 4;
    struct lmp_side *dl = mp_loop_realloc(S->loop, t->side,
        sizeof *dl + (size_t)cap * sizeof dl->d[0]);
    if (!dl) return luaL_error(L, "not enough memory");
    if (!t->side) {
      dl->wait_co = NULL;
      dl->joiners = NULL;
      dl->n = dl->nexpired = 0;
    }
    dl->cap = cap;
    t->side = dl;
    lmp_side_moved(dl);
  }
  struct mp_op *op = mp_op_new(S->loop, deadline_cb, t);
  if (!op) return luaL_error(L, "not enough memory");
  mp_loop_update_time(S->loop);
  mp_op_prep_timer(op, s >= 4.6e9 ? INT64_C(1) << 62 : (int64_t)(s * 1e9));
  if (mp_op_submit(op) < 0) {
    mp_op_release(op);
    return luaL_error(L, "not enough memory");
  }
  *id = ++S->lastwait;
  t->side->d[t->side->n++] = (struct lmp_deadline){op, L, *id, 1};
  return 1;
}

/* Takes the guard's deadline off its task's list (wherever it is: a
 * coroutine abandoned inside its own mp.timeout can leave one above it);
 * returns true if it had fired. A second call finds nothing. */
static int remove_deadline(lua_State *L) {
  lua_KContext *id = luaL_checkudata(L, 1, LMP_DEADLINE);
  lua_getiuservalue(L, 1, 1);
  struct lmp_task *t = lua_touserdata(L, -1);
  lua_pop(L, 1); /* the guard keeps it */
  struct lmp_side *dl = t ? t->side : NULL;
  int i = dl ? dl->n - 1 : -1;
  while (i >= 0 && dl->d[i].id != *id) i--;
  *id = 0;
  if (i < 0) return 0; /* gone with its task */
  struct lmp_deadline d = dl->d[i];
  memmove(&dl->d[i], &dl->d[i + 1],
          (size_t)(dl->n - i - 1) * sizeof dl->d[0]);
  dl->n--;
  if (mp_op_inflight(d.op)) {
    lmp_drop_op(d.op);
    return 0;
  }
  if (d.live) dl->nexpired--;
  mp_op_release(d.op);
  return 1;
}

static int l_deadline_pop(lua_State *L) {
  lua_pushboolean(L, remove_deadline(L));
  return 1;
}

/* __close and __gc of a guard: its coroutine left mp.timeout without
 * returning through it. */
static int deadline_drop(lua_State *L) {
  remove_deadline(L);
  return 0;
}

void lmp_open_deadline(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg funcs[] = {
    {"deadline_push", l_deadline_push}, {"deadline_pop", l_deadline_pop},
    {NULL, NULL}};
  luaL_newmetatable(L, LMP_DEADLINE);
  lua_pushcfunction(L, deadline_drop);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, deadline_drop);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, LMP_DEADLINE);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}
