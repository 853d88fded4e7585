/* watch_unix.c: mp_watch on Linux inotify. One inotify descriptor per
 * watch, one inotify watch per directory (the whole tree when recursive),
 * a table from watch descriptors to paths, and the decoded events'
 * queue. The read of the descriptor is a plain MP_OP_READ (non-blocking:
 * io_uring polls it, epoll waits for readiness). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp_internal.h"

#define MASK                                                               \
  (IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM |         \
   IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_EXCL_UNLINK)

/* A batch this close to full may have been cut between the two halves
 * of a rename. */
enum { ROOM = sizeof(struct inotify_event) + NAME_MAX + 1 };

struct wdir {
  int wd;
  char *path;
};

struct mp_watch {
  int fd, flags;
  struct wdir *dirs; /* dirs[0]: the watched path itself */
  size_t ndirs, capdirs;
  struct mp__wq ev;  /* the decoded events */
  /* A MOVED_FROM waiting for its MOVED_TO (the next event). */
  char *moved;
  uint32_t cookie;
  int moved_dir;
};

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  if (a == 0 || dir[a - 1] != '/') p[a++] = '/';
  memcpy(p + a, name, b + 1);
  return p;
}

static int find(struct mp_watch *w, int wd) {
  for (size_t i = 0; i < w->ndirs; i++)
    if (w->dirs[i].wd == wd) return (int)i;
  return -1;
}

static void drop_dir(struct mp_watch *w, size_t i) {
  free(w->dirs[i].path);
  w->dirs[i] = w->dirs[--w->ndirs];
}

/* Watches directory path (kept as it is): 0 or an MP_E* code. */
static int add_dir(struct mp_watch *w, const char *path, uint32_t extra) {
  int wd = inotify_add_watch(w->fd, path, MASK | extra);
  if (wd < 0) return mp_err_from_errno(errno);
  char *copy = strdup(path);
  if (!copy) return MP_ENOMEM;
  int i = find(w, wd);
  if (i >= 0) { /* the same directory under a new name */
    free(w->dirs[i].path);
    w->dirs[i].path = copy;
    return 0;
  }
  if (w->ndirs == w->capdirs) {
    size_t cap = w->capdirs ? w->capdirs * 2 : 8;
    struct wdir *d = realloc(w->dirs, cap * sizeof *d);
    if (!d) {
      free(copy);
      inotify_rm_watch(w->fd, wd);
      return MP_ENOMEM;
    }
    w->dirs = d;
    w->capdirs = cap;
  }
  w->dirs[w->ndirs++] = (struct wdir){wd, copy};
  return 0;
}

static int under(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Watches the subdirectories of dir, and with emit reports every entry
 * as created (they appeared before their directory was watched). Only
 * running out of watches or memory is an error: a subdirectory that
 * vanished or is unreadable is left out. Symlinks are not followed. */
static int walk(struct mp_watch *w, const char *dir, int emit) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int r = 0;
  if (!d) return 0;
  while (r == 0 && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *p = join(dir, e->d_name);
    if (!p) {
      r = MP_ENOMEM;
      break;
    }
    int isdir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      isdir = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (isdir) {
      r = add_dir(w, p, IN_ONLYDIR | IN_DONT_FOLLOW);
      if (r != MP_ENOSPC && r != MP_ENOMEM) r = walk(w, p, emit);
    }
    if (emit) mp__wq_push(&w->ev, MP_WEV_CREATE, p, NULL);
    else free(p);
  }
  closedir(d);
  return r;
}

int mp_watch_open(const char *path, int flags, struct mp_watch **out) {
  struct mp_watch *w = calloc(1, sizeof *w);
  struct stat st;
  size_t n = strlen(path);
  int r;
  *out = NULL;
  if (!w) return MP_ENOMEM;
  w->flags = flags;
  w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->fd < 0) {
    r = mp_err_from_errno(errno);
    free(w);
    return r;
  }
  char *root = strdup(path);
  if (!root) {
    r = MP_ENOMEM;
    goto fail;
  }
  while (n > 1 && root[n - 1] == '/') root[--n] = '\0'; /* "dir/" */
  r = add_dir(w, root, 0);
  if (r == 0 && (flags & MP_WATCH_RECURSIVE) && stat(root, &st) == 0 &&
      S_ISDIR(st.st_mode))
    r = walk(w, root, 0);
  free(root);
  if (r < 0) goto fail;
  *out = w;
  return 0;
fail:
  mp__close_fd(w->fd);
  mp_watch_free(w);
  return r;
}

mp_handle_t mp_watch_handle(const struct mp_watch *w) { return w->fd; }

void mp_op_prep_watch(struct mp_op *op, struct mp_watch *w, void *buf,
                      size_t len) {
  mp_op_prep_read(op, w->fd, buf, len, -1);
}

/* The pending MOVED_FROM had no MOVED_TO: it left the tree. */
static void flush_moved(struct mp_watch *w) {
  if (!w->moved) return;
  if (w->moved_dir && (w->flags & MP_WATCH_RECURSIVE)) {
    for (size_t i = 1; i < w->ndirs;) {
      if (under(w->dirs[i].path, w->moved)) {
        inotify_rm_watch(w->fd, w->dirs[i].wd);
        drop_dir(w, i);
      } else {
        i++;
      }
    }
  }
  mp__wq_push(&w->ev, MP_WEV_DELETE, w->moved, NULL);
  w->moved = NULL;
}

/* A directory renamed inside the tree: its watches' paths follow. */
static void rename_dirs(struct mp_watch *w, const char *from,
                        const char *to) {
  size_t nf = strlen(from), nt = strlen(to);
  for (size_t i = 1; i < w->ndirs; i++) {
    char *p = w->dirs[i].path;
    if (!under(p, from)) continue;
    char *q = malloc(nt + strlen(p + nf) + 1);
    if (!q) continue;
    memcpy(q, to, nt);
    strcpy(q + nt, p + nf);
    free(p);
    w->dirs[i].path = q;
  }
}

/* A directory appeared in a recursive watch: watch it, report what is
 * in it already. */
static void new_dir(struct mp_watch *w, const char *path) {
  int r = add_dir(w, path, IN_ONLYDIR | IN_DONT_FOLLOW);
  if (r == 0) r = walk(w, path, 1);
  if (r == MP_ENOSPC || r == MP_ENOMEM) w->ev.lost = 1;
}

void mp_watch_feed(struct mp_watch *w, const void *buf, size_t len) {
  const char *p = buf, *end = p + len;
  int rec = (w->flags & MP_WATCH_RECURSIVE) != 0;
  while (p + sizeof(struct inotify_event) <= end) {
    struct inotify_event e;
    memcpy(&e, p, sizeof e);
    const char *name = e.len ? p + sizeof e : NULL;
    p += sizeof e + e.len;
    if (name && !*name) name = NULL;
    if (w->moved && !((e.mask & IN_MOVED_TO) && e.cookie == w->cookie))
      flush_moved(w);
    if (e.mask & IN_Q_OVERFLOW) {
      w->ev.lost = 1;
      continue;
    }
    int i = find(w, e.wd);
    if (i < 0) continue; /* a watch removed meanwhile */
    if (e.mask & IN_IGNORED) {
      if (i > 0) drop_dir(w, (size_t)i);
      continue;
    }
    /* A subdirectory's own events come from its parent's watch too. */
    if (!name && i > 0) continue;
    int isdir = (e.mask & IN_ISDIR) != 0;
    char *path = name ? join(w->dirs[i].path, name)
                      : strdup(w->dirs[i].path);
    if (!path) {
      w->ev.lost = 1;
      continue;
    }
    if (e.mask & IN_MOVED_FROM) {
      w->moved = path;
      w->cookie = e.cookie;
      w->moved_dir = isdir;
    } else if (e.mask & IN_MOVED_TO) {
      if (w->moved) {
        if (isdir && rec) rename_dirs(w, w->moved, path);
        mp__wq_push(&w->ev, MP_WEV_RENAME, path, w->moved);
        w->moved = NULL;
      } else {
        if (isdir && rec) new_dir(w, path);
        mp__wq_push(&w->ev, MP_WEV_CREATE, path, NULL);
      }
    } else if (e.mask & IN_CREATE) {
      /* reported first: what the new directory holds comes after it */
      char *again = isdir && rec ? strdup(path) : NULL;
      if (isdir && rec && !again) w->ev.lost = 1; /* it goes unwatched */
      mp__wq_push(&w->ev, MP_WEV_CREATE, path, NULL);
      if (again) new_dir(w, again);
      free(again);
    } else if (e.mask & (IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)) {
      mp__wq_push(&w->ev, MP_WEV_DELETE, path, NULL);
    } else if (e.mask & (IN_MODIFY | IN_ATTRIB)) {
      mp__wq_push(&w->ev, MP_WEV_MODIFY, path, NULL);
    } else {
      free(path);
    }
  }
  /* A rename's second half may be in the next batch only if this one was
   * cut short for room. */
  if (w->moved && len + ROOM <= MP_WATCH_BUF) flush_moved(w);
}

int mp_watch_take(struct mp_watch *w, struct mp_watch_event *ev) {
  return mp__wq_take(&w->ev, ev);
}

void mp_watch_free(struct mp_watch *w) {
  if (!w) return;
  for (size_t i = 0; i < w->ndirs; i++) free(w->dirs[i].path);
  mp__wq_free(&w->ev);
  free(w->moved);
  free(w->dirs);
  free(w);
}
