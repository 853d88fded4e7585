/* lhttp.h: the HTTP/1.1 message parser behind mp.http (lhttp.c). */
#ifndef LHTTP_H
#define LHTTP_H

#include "lcore.h"

/* Adds http_parser(kind, max_header) to the core table (at -1). */
void lmp_open_http(lua_State *L, struct lmp_state *S);

#endif
