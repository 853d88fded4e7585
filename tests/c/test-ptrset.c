/* test-ptrset.c: the address set stream methods check their object with
 * (bindings/lptrset.c): adds, growth, and removal by backward shift
 * against a plain array, with addresses that crowd few home slots. */
#include "task.h"
#include "../../bindings/lptrset.c"

enum { N = 3000, STEPS = 200000 };

TEST_IMPL(ptrset_against_array) {
  struct mp_loop *loop;
  struct lmp_ptrset s;
  static char block[N * 16];
  static unsigned char in[N];
  size_t n = 0;
  uint64_t rng = 0x2545f4914f6cdd1dull;
  ASSERT_EQ(mp_loop_new(&loop, NULL), 0);
  memset(&s, 0, sizeof s);
  ASSERT(!lmp_ptrset_has(&s, block)); /* no table yet */
  lmp_ptrset_del(&s, block);           /* nothing to remove */
  for (int step = 0; step < STEPS; step++) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    /* the first half of the steps mostly adds, the rest mostly removes:
     * the table grows, then long runs of neighbours are taken apart */
    size_t i = (size_t)(rng >> 20) % N;
    int add = (rng & 0xff) < (step < STEPS / 2 ? 170u : 90u);
    const void *p = block + i * 16;
    if (add && !in[i]) {
      ASSERT_EQ(lmp_ptrset_add(&s, loop, p), 0);
      in[i] = 1;
      n++;
    } else if (!add) {
      lmp_ptrset_del(&s, p);
      n -= in[i];
      in[i] = 0;
    }
    ASSERT_EQ(s.n, n);
    if (step % 1000 == 0) /* every address, in or out */
      for (size_t k = 0; k < N; k++)
        ASSERT_EQ(lmp_ptrset_has(&s, block + k * 16), in[k]);
  }
  for (size_t k = 0; k < N; k++) lmp_ptrset_del(&s, block + k * 16);
  ASSERT_EQ(s.n, 0);
  for (size_t k = 0; k < N; k++) ASSERT(!lmp_ptrset_has(&s, block + k * 16));
  lmp_ptrset_free(&s);
  ASSERT(!lmp_ptrset_has(&s, block));
  ASSERT_EQ(lmp_ptrset_add(&s, loop, block), 0); /* usable again */
  ASSERT(lmp_ptrset_has(&s, block));
  lmp_ptrset_free(&s);
  ASSERT_EQ(mp_loop_close(loop), 0);
  return 0;
}
