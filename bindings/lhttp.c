/* lhttp.c: the HTTP/1.1 message parser of mp.http (lua/moonport/http.lua)
 * over libhttp-parser, the parser Node used for a decade. Lua feeds it the
 * bytes a stream received; it builds the header table in C and hands back
 * the decoded body (chunked or sized) piece by piece.
 *
 *   p = core.http_parser("request" | "response", max_header)
 *   ev, next, body = p:execute(s, i)   -- parse s from index i
 *
 * ev is "head" (headers complete: p:info() describes the message),
 * "done" (message complete) or "more" (s used up: receive more); next is
 * where parsing stopped, body the body bytes decoded on the way (nil when
 * none). The parser pauses at "head" and "done", so one call never runs
 * past a message: a pipelined request stays in s for the next call. A
 * failure returns nil, msg, "EHTTP", reason (the parser's error name
 * without "HPE_", or "HEADER_TOO_LARGE"); the parser stays failed. */
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "lhttp.h"

#define LMP_HTTP_PARSER "moonport.http_parser"

/* A growable byte string for the pieces that span reads. */
struct sbuf {
  char *p;
  size_t len, cap;
};

struct lhttp {
  http_parser p;
  lua_State *L;            /* during execute */
  int headers;             /* stack index of the header table, then */
  struct sbuf url, field, value, body;
  size_t head_bytes, max_header;
  int in_value;            /* the last header piece was a value */
  int in_body;             /* between "head" and "done" */
  int skipbody;            /* next response has no body (HEAD) */
  int event;               /* EV_* set by the callbacks */
  int done;                /* "head" of a message already complete */
  int failed;              /* oom in a callback, or an error: stays */
  const char *reason;      /* why it failed, when not the parser's errno */
};

enum { EV_NONE, EV_HEAD, EV_DONE };

static int sbuf_add(struct sbuf *b, const char *s, size_t n) {
  if (n == 0) return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

static struct lhttp *self(http_parser *p) { return p->data; }

static int add(http_parser *p, struct sbuf *b, const char *s, size_t n) {
  if (sbuf_add(b, s, n) == 0) return 0;
  self(p)->reason = "OUT_OF_MEMORY";
  return -1;
}

/* Stores the header in field/value into the header table: lower-case
 * name; a repeated one joined with ", ", set-cookie always an array. */
static void commit(struct lhttp *h) {
  lua_State *L = h->L;
  if (h->field.len == 0) return;
  char *f = h->field.p;
  for (size_t i = 0; i < h->field.len; i++)
    if (f[i] >= 'A' && f[i] <= 'Z') f[i] = (char)(f[i] + 32);
  size_t vl = h->value.len;
  while (vl > 0 && (h->value.p[vl - 1] == ' ' || h->value.p[vl - 1] == '\t'))
    vl--;
  const char *v = vl ? h->value.p : "";
  lua_pushlstring(L, f, h->field.len);     /* name */
  lua_pushvalue(L, -1);
  int t = lua_rawget(L, h->headers);       /* name, old */
  int cookie = h->field.len == 10 && memcmp(f, "set-cookie", 10) == 0;
  if (cookie) {
    if (t != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_createtable(L, 1, 0);
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, h->headers);
    }
    lua_pushlstring(L, v, vl);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 2);
  } else {
    if (t == LUA_TSTRING) {                /* joined with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, vl);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, vl);
    }
    lua_rawset(L, h->headers);
  }
  h->field.len = h->value.len = 0;
}

static int on_message_begin(http_parser *p) {
  struct lhttp *h = self(p);
  h->url.len = h->field.len = h->value.len = 0;
  h->in_value = 0;
  lua_createtable(h->L, 0, 8); /* room for a typical request's headers */
  lua_replace(h->L, h->headers);
  return 0;
}

static int on_url(http_parser *p, const char *s, size_t n) {
  return add(p, &self(p)->url, s, n);
}

static int on_header_field(http_parser *p, const char *s, size_t n) {
  struct lhttp *h = self(p);
  if (h->in_value) {
    commit(h);
    h->in_value = 0;
  }
  return add(p, &h->field, s, n);
}

static int on_header_value(http_parser *p, const char *s, size_t n) {
  struct lhttp *h = self(p);
  h->in_value = 1;
  return add(p, &h->value, s, n);
}

static int on_headers_complete(http_parser *p) {
  struct lhttp *h = self(p);
  if (h->in_value) commit(h);
  h->in_value = 0;
  h->event = EV_HEAD;
  h->in_body = 1;
  /* A request without a body completes at once: "head" says so, and the
   * caller saves a call. */
  if (p->type != HTTP_REQUEST || (p->flags & F_CHUNKED) ||
      (p->content_length != 0 && p->content_length != ULLONG_MAX))
    http_parser_pause(p, 1);
  if (h->skipbody) {
    h->skipbody = 0;
    return 1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *s, size_t n) {
  return add(p, &self(p)->body, s, n);
}

static int on_message_complete(http_parser *p) {
  struct lhttp *h = self(p);
  if (h->event == EV_HEAD) h->done = 1;
  else h->event = EV_DONE;
  h->in_body = 0; /* run() resets head_bytes: it adds this call first */
  http_parser_pause(p, 1);
  return 0;
}

static http_parser_settings settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

static struct lhttp *check(lua_State *L) {
  return luaL_checkudata(L, 1, LMP_HTTP_PARSER);
}

static int fail(lua_State *L, struct lhttp *h) {
  h->failed = 1;
  const char *name = h->reason;
  const char *msg = name;
  if (!name) {
    enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
    name = http_errno_name(e);
    if (strncmp(name, "HPE_", 4) == 0) name += 4;
    msg = http_errno_description(e);
  } else if (strcmp(name, "HEADER_TOO_LARGE") == 0) {
    msg = "header larger than the limit";
  } else if (strcmp(name, "OUT_OF_MEMORY") == 0) {
    msg = "not enough memory";
  } else {
    msg = "the parser failed earlier";
  }
  lua_pushnil(L);
  lua_pushfstring(L, "HTTP: %s", msg);
  lua_pushliteral(L, "EHTTP");
  lua_pushstring(L, name);
  return 4;
}

/* Pushes headers, method (a request's) or status (a response's), url,
 * major, minor, keep_alive, content_length (nil when none), chunked,
 * upgrade. */
static int info(lua_State *L, struct lhttp *h) {
  http_parser *p = &h->p;
  lua_getiuservalue(L, 1, 1);
  if (p->type == HTTP_REQUEST) {
    lua_pushstring(L, http_method_str((enum http_method)p->method));
    lua_pushlstring(L, h->url.p ? h->url.p : "", h->url.len);
  } else {
    lua_pushinteger(L, p->status_code);
    lua_pushnil(L);
  }
  lua_pushinteger(L, p->http_major);
  lua_pushinteger(L, p->http_minor);
  lua_pushboolean(L, http_should_keep_alive(p));
  if (p->content_length != ULLONG_MAX && !(p->flags & F_CHUNKED) &&
      p->content_length <= (uint64_t)LUA_MAXINTEGER)
    lua_pushinteger(L, (lua_Integer)p->content_length);
  else
    lua_pushnil(L);
  lua_pushboolean(L, p->flags & F_CHUNKED);
  lua_pushboolean(L, p->upgrade);
  return 9;
}

/* Runs the parser over n bytes at s; pushes the results. The header
 * table lives in the user value between calls. */
static int run(lua_State *L, struct lhttp *h, const char *s, size_t n,
               lua_Integer start) {
  if (h->failed) {
    if (!h->reason) h->reason = "CLOSED_CONNECTION";
    return fail(L, h);
  }
  if (HTTP_PARSER_ERRNO(&h->p) == HPE_PAUSED) http_parser_pause(&h->p, 0);
  lua_getiuservalue(L, 1, 1);
  h->L = L;
  h->headers = lua_gettop(L);
  h->event = EV_NONE;
  h->done = 0;
  h->body.len = 0;
  int counting = !h->in_body;
  h->failed = 1; /* until the parser returns: a raise in a callback */
  size_t used = http_parser_execute(&h->p, &settings, s, n);
  h->failed = 0;
  lua_setiuservalue(L, 1, 1);
  h->L = NULL;
  enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
  if (e != HPE_OK && e != HPE_PAUSED) return fail(L, h);
  if (counting) {
    if (h->head_bytes + used > h->max_header) {
      h->reason = "HEADER_TOO_LARGE";
      return fail(L, h);
    }
    h->head_bytes = h->in_body || h->done ? 0 : h->head_bytes + used;
  }
  if (h->event == EV_HEAD) {
    lua_pushliteral(L, "head");
    lua_pushinteger(L, start + (lua_Integer)used);
    lua_pushboolean(L, h->done);
    return 3 + info(L, h);
  }
  lua_pushstring(L, h->event == EV_DONE ? "done" : "more");
  lua_pushinteger(L, start + (lua_Integer)used);
  if (h->body.len) lua_pushlstring(L, h->body.p, h->body.len);
  else lua_pushnil(L);
  if (h->body.cap > 65536) { /* a big piece: do not keep its memory */
    free(h->body.p);
    h->body.p = NULL;
    h->body.cap = 0;
  }
  h->body.len = 0;
  return 3;
}

static int p_execute(lua_State *L) {
  struct lhttp *h = check(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  luaL_argcheck(L, i >= 1 && (size_t)i <= len + 1, 3, "out of range");
  lua_settop(L, 3);
  return run(L, h, s + i - 1, len - (size_t)(i - 1), i);
}

/* The peer closed: ends a body that runs until then (a response without
 * a length), or fails a message cut short. */
static int p_finish(lua_State *L) {
  struct lhttp *h = check(L);
  lua_settop(L, 1);
  return run(L, h, NULL, 0, 1);
}

static int p_info(lua_State *L) {
  return info(L, check(L));
}

/* The next response has no body whatever its headers say (HEAD). */
static int p_skipbody(lua_State *L) {
  check(L)->skipbody = lua_toboolean(L, 2);
  return 0;
}

static int p_gc(lua_State *L) {
  struct lhttp *h = check(L);
  free(h->url.p);
  free(h->field.p);
  free(h->value.p);
  free(h->body.p);
  memset(&h->url, 0, sizeof h->url);
  memset(&h->field, 0, sizeof h->field);
  memset(&h->value, 0, sizeof h->value);
  memset(&h->body, 0, sizeof h->body);
  return 0;
}

static int l_http_parser(lua_State *L) {
  static const char *const kinds[] = { "request", "response", NULL };
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  lua_Integer max = luaL_optinteger(L, 2, 16384);
  luaL_argcheck(L, max > 0, 2, "positive size expected");
  struct lhttp *h = lua_newuserdatauv(L, sizeof *h, 1);
  memset(h, 0, sizeof *h);
  http_parser_init(&h->p, kind == 0 ? HTTP_REQUEST : HTTP_RESPONSE);
  h->p.data = h;
  h->max_header = (size_t)max;
  luaL_setmetatable(L, LMP_HTTP_PARSER);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

void lmp_open_http(lua_State *L, struct lmp_state *S) {
  static const luaL_Reg meta[] = { { "__gc", p_gc }, { NULL, NULL } };
  static const luaL_Reg methods[] = {
    { "execute", p_execute }, { "finish", p_finish }, { "info", p_info },
    { "skipbody", p_skipbody }, { NULL, NULL }
  };
  lmp_new_class(L, S, LMP_HTTP_PARSER, meta, methods);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_http_parser, 1);
  lua_setfield(L, -2, "http_parser");
}
