/* lqueue.h: the task queues, which need no Lua (lqueue.c): the ready
 * queue, leaving a joiner list or wait queue, and mp.sleep's heap of
 * sleepers with its one loop timer. Below lcore.h, which includes it; it
 * calls nothing above (a sleeper due is readied here). Not a public
 * header. */
#ifndef LQUEUE_H
#define LQUEUE_H

#include "lstate.h"

/* to the ready queue */
void lmp_ready_push(struct lmp_state *S, struct lmp_task *t);
void lmp_ready_remove(struct lmp_state *S, struct lmp_task *t);
/* Takes t off its queue (the first, or one that will not return what it
 * is handed: lmp_wq_stale). */
void lmp_wq_remove(struct lmp_task *t);
/* Off the joiner list or queue it is on. */
void lmp_unlink_wait(struct lmp_task *t);

/* mp.sleep (lcore.c lmp_sleep): room for one more sleeper, asked before
 * the suspension starts; then t, its suspension started (t->wait orders
 * sleepers due together), sleeps until due, the timer armed (else it is
 * taken out again). 0, or an MP_E* code. A sleep that ends otherwise
 * takes its entry out (lmp_sleeper_remove). */
int lmp_sleep_reserve(struct lmp_state *S);
int lmp_sleep_insert(struct lmp_state *S, struct lmp_task *t, int64_t due);
void lmp_sleeper_remove(struct lmp_state *S, struct lmp_task *t);

#endif
