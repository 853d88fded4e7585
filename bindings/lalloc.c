/* lalloc.c: a Lua allocator for hosts (moonport_newstate).
 *
 * Lua tells the allocator the size of every block it frees, so small
 * blocks need no header: they come from per-size free lists (16-byte
 * classes up to 1 KiB) carved out of 2 MiB regions the kernel may back
 * with huge pages. A parked task is mostly small blocks (its coroutine's
 * state, 45-slot stack and call frames, its task record), so this saves
 * malloc's per-block overhead and most page faults; larger blocks go to
 * malloc. Freed small blocks are kept for reuse, not returned to the
 * system, until the state is closed. Sanitizer builds use malloc for
 * everything, so ASan keeps seeing every Lua block. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "moonport.h"
#include "mp_os.h"

enum {
  GRAIN = 16,
  SMALL_MAX = 1024,
  NCLASSES = SMALL_MAX / GRAIN,
  REGION = 2 << 20
};

struct region {
  struct region *next;
};

struct arena {
  void *free[NCLASSES]; /* per class: free blocks linked through word 0 */
  char *cur, *end;      /* the unused tail of the newest region */
  struct region *regions;
};

static size_t class_of(size_t n) { return (n + GRAIN - 1) / GRAIN - 1; }

static int new_region(struct arena *a) {
  /* 2 MiB-aligned, so the kernel may back it with huge pages. */
  char *start = mp_os_map(REGION, REGION);
  if (!start) return -1;
  struct region *r = (struct region *)start;
  r->next = a->regions;
  a->regions = r;
  a->cur = start + GRAIN; /* the first grain holds the region link */
  a->end = start + REGION;
  return 0;
}

static void *small_alloc(struct arena *a, size_t n) {
  size_t c = class_of(n), size = (c + 1) * GRAIN;
  void *p = a->free[c];
  if (p) {
    a->free[c] = *(void **)p;
    return p;
  }
  if ((size_t)(a->end - a->cur) < size) {
    /* The tail of the old region goes to the free lists it fits. */
    while (a->cur && (size_t)(a->end - a->cur) >= GRAIN) {
      size_t left = (size_t)(a->end - a->cur);
      size_t k = class_of(left > SMALL_MAX ? SMALL_MAX : left / GRAIN * GRAIN);
      *(void **)a->cur = a->free[k];
      a->free[k] = a->cur;
      a->cur += (k + 1) * GRAIN;
    }
    if (new_region(a) < 0) return NULL;
  }
  p = a->cur;
  a->cur += size;
  return p;
}

static void small_free(struct arena *a, void *p, size_t n) {
  size_t c = class_of(n);
  *(void **)p = a->free[c];
  a->free[c] = p;
}

static void *arena_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct arena *a = ud;
  if (!ptr) osize = 0; /* osize then tells the type of the new object */
  if (nsize == 0) {
    if (ptr) {
      if (osize <= SMALL_MAX) small_free(a, ptr, osize);
      else free(ptr);
    }
    return NULL;
  }
  if (osize > SMALL_MAX && nsize > SMALL_MAX) return realloc(ptr, nsize);
  if (ptr && osize <= SMALL_MAX && nsize <= SMALL_MAX &&
      class_of(osize) == class_of(nsize))
    return ptr;
  void *q = nsize <= SMALL_MAX ? small_alloc(a, nsize) : malloc(nsize);
  if (!q) return NULL; /* Lua keeps the old block */
  if (ptr) {
    memcpy(q, ptr, osize < nsize ? osize : nsize);
    if (osize <= SMALL_MAX) small_free(a, ptr, osize);
    else free(ptr);
  }
  return q;
}

static void arena_destroy(struct arena *a) {
  while (a->regions) {
    struct region *r = a->regions;
    a->regions = r->next;
    mp_os_unmap(r, REGION);
  }
  free(a);
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  lua_writestringerror("moonport: unprotected error: %s\n",
                       msg ? msg : "(error object is not a string)");
  return 0;
}

lua_State *moonport_newstate(void) {
#if defined(MP_DEBUG) || defined(__SANITIZE_ADDRESS__)
  lua_State *L = luaL_newstate();
  if (L) lua_atpanic(L, panic);
  return L;
#else
  struct arena *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  lua_State *L = lua_newstate(arena_alloc, a);
  if (!L) {
    arena_destroy(a);
    return NULL;
  }
  lua_atpanic(L, panic);
  return L;
#endif
}

void moonport_closestate(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  lua_close(L);
  if (f == arena_alloc) arena_destroy(ud);
}
