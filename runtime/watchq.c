/* watchq.c: the queue of decoded events a watcher keeps (watch_unix.c,
 * watch_win.c): bounded by MP_WATCH_QUEUE; once events are dropped, one
 * MP_WEV_OVERFLOW stands for all of them. */
#include <stdlib.h>
#include <string.h>

#include "mp_internal.h"

static void wev_free(struct mp__wev *e) {
  free(e->path);
  free(e->from);
  e->path = e->from = NULL;
}

void mp__wq_push(struct mp__wq *w, int type, char *path, char *from) {
  size_t n = w->len - w->head;
  if (!w->lost && n < MP_WATCH_QUEUE && (path || type == MP_WEV_OVERFLOW)) {
    if (w->head > 0 && w->len == w->cap) {
      memmove(w->q, w->q + w->head, n * sizeof *w->q);
      w->head = 0;
      w->len = n;
    }
    if (w->len == w->cap) {
      size_t cap = w->cap ? w->cap * 2 : 64;
      struct mp__wev *q = realloc(w->q, cap * sizeof *q);
      if (q) {
        w->q = q;
        w->cap = cap;
      }
    }
    if (w->len < w->cap) {
      w->q[w->len++] = (struct mp__wev){type, path, from};
      return;
    }
  }
  w->lost = 1;
  free(path);
  free(from);
}

int mp__wq_take(struct mp__wq *w, struct mp_watch_event *ev) {
  wev_free(&w->cur);
  if (w->head < w->len) {
    w->cur = w->q[w->head++];
    if (w->head == w->len) w->head = w->len = 0;
  } else if (w->lost) {
    w->lost = 0;
    w->cur = (struct mp__wev){MP_WEV_OVERFLOW, NULL, NULL};
  } else {
    return 0;
  }
  ev->type = w->cur.type;
  ev->path = w->cur.path;
  ev->from = w->cur.from;
  return 1;
}

void mp__wq_free(struct mp__wq *w) {
  for (size_t i = w->head; i < w->len; i++) wev_free(&w->q[i]);
  wev_free(&w->cur);
  free(w->q);
}
