/* lptrset.c: the address set (see lptrset.h). */
#include <stdlib.h>
#include <string.h>

#include "lptrset.h"

static size_t capacity(const struct lmp_ptrset *s) {
  return s->shift ? (size_t)1 << (64 - s->shift) : 0;
}

static void put(struct lmp_ptrset *s, const void *p) {
  size_t mask = capacity(s) - 1, i = lmp_ptrset_home(s, p);
  while (s->slot[i]) i = (i + 1) & mask;
  s->slot[i] = p;
  s->n++;
}

int lmp_ptrset_add(struct lmp_ptrset *s, struct mp_loop *loop, const void *p) {
  size_t cap = capacity(s);
  if ((s->n + 1) * 2 > cap) { /* at most half full: short probes */
    struct lmp_ptrset t;
    size_t ncap = cap ? cap * 2 : 16;
    unsigned bits = 0;
    while (((size_t)1 << bits) < ncap) bits++;
    if (bits >= 48) return MP_ENOMEM;
    t.slot = mp_loop_calloc(loop, ncap, sizeof *t.slot);
    if (!t.slot) return MP_ENOMEM;
    t.n = 0;
    t.shift = 64 - bits;
    for (size_t i = 0; i < cap; i++)
      if (s->slot[i]) put(&t, s->slot[i]);
    free(s->slot);
    *s = t;
  }
  put(s, p);
  return 0;
}

void lmp_ptrset_del(struct lmp_ptrset *s, const void *p) {
  if (!s->n) return;
  size_t mask = capacity(s) - 1, i = lmp_ptrset_home(s, p);
  while (s->slot[i] != p) {
    if (!s->slot[i]) return;
    i = (i + 1) & mask;
  }
  /* Backward shift: the entries after the hole that probed past it move
   * up, so a lookup never stops early at a hole (no tombstones). */
  for (size_t j = (i + 1) & mask; s->slot[j]; j = (j + 1) & mask) {
    size_t home = lmp_ptrset_home(s, s->slot[j]);
    /* the entry at j may fill the hole at i unless its home lies
     * cyclically in (i, j] */
    int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    s->slot[i] = s->slot[j];
    i = j;
  }
  s->slot[i] = NULL;
  s->n--;
}

void lmp_ptrset_free(struct lmp_ptrset *s) {
  free(s->slot);
  memset(s, 0, sizeof *s);
}
