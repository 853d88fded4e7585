/* lptrset.h: a set of addresses (open addressing, linear probing), for
 * methods that recognise their own object by its address.
 *
 * A stream method is called a few times per request with its object at
 * index 1, and must be sure it is a stream before it uses the block
 * (a foreign userdata of the same size would do anything). The exact
 * check through the API (the metatable compared: lua_getmetatable, two
 * lua_topointer, lua_settop) costs about 190 instructions; asking whether
 * a full userdata's block is one of the state's live streams costs a
 * hash and a probe or two. The set is only an accelerator: an object not
 * in it (its insertion found no memory, or it was finalized) takes the
 * exact check, so adding may fail; removal never allocates, and must be
 * done before the block can be freed (__gc: Lua frees a finalized block
 * only in a later cycle). */
#ifndef LPTRSET_H
#define LPTRSET_H

#include <stddef.h>
#include <stdint.h>

#include "mp.h"

struct lmp_ptrset {
  const void **slot; /* NULL: empty; a power of two of them */
  size_t n;          /* addresses in it */
  unsigned shift;    /* 64 - log2(capacity); 0 while there is no table */
};

static inline size_t lmp_ptrset_home(const struct lmp_ptrset *s,
                                     const void *p) {
  /* Fibonacci hashing: the high bits of the product spread the addresses
   * (which share their low bits: alignment) over the table */
  return (size_t)(((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull) >>
                  s->shift);
}

/* Whether p (not NULL) is in s. */
static inline int lmp_ptrset_has(const struct lmp_ptrset *s, const void *p) {
  if (!s->n) return 0;
  size_t mask = ((size_t)1 << (64 - s->shift)) - 1;
  for (size_t i = lmp_ptrset_home(s, p);; i = (i + 1) & mask) {
    const void *q = s->slot[i];
    if (q == p) return 1;
    if (!q) return 0;
  }
}

/* Adds p (not NULL, not in s): 0, or MP_ENOMEM (s unchanged). */
int lmp_ptrset_add(struct lmp_ptrset *s, struct mp_loop *loop, const void *p);
/* Removes p if it is in s. */
void lmp_ptrset_del(struct lmp_ptrset *s, const void *p);
/* Frees the table; s is empty again (and may be used again). */
void lmp_ptrset_free(struct lmp_ptrset *s);

#endif
