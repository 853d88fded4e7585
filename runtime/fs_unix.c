/* fs_unix.c: files and paths on Unix: the synchronous mp_os_* file calls
 * (mp_os.h) and the blocking bodies of the file ops the threadpool runs. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp_internal.h"
#include "mp_os.h"

static int err_of(int e) { return -e; }

int mp_os_close(mp_handle_t h) {
  if (close(h) < 0 && errno != EINTR) return err_of(errno);
  return 0;
}

static uint8_t type_of(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return MP_FT_FILE;
    case S_IFDIR: return MP_FT_DIR;
    case S_IFLNK: return MP_FT_LINK;
    case S_IFIFO: return MP_FT_FIFO;
    case S_IFSOCK: return MP_FT_SOCK;
    case S_IFCHR: return MP_FT_CHAR;
    case S_IFBLK: return MP_FT_BLOCK;
    default: return MP_FT_UNKNOWN;
  }
}

void mp__stat_from_stat(struct mp_stat *o, const struct stat *st) {
  o->size = (int64_t)st->st_size;
  o->ino = (uint64_t)st->st_ino;
  o->dev = (uint64_t)st->st_dev;
  o->nlink = (uint64_t)st->st_nlink;
  o->blocks = (uint64_t)st->st_blocks;
  o->mode = (uint32_t)(st->st_mode & 07777);
  o->uid = (uint32_t)st->st_uid;
  o->gid = (uint32_t)st->st_gid;
  o->type = type_of(st->st_mode);
  o->atime.sec = (int64_t)st->st_atim.tv_sec;
  o->atime.nsec = (int32_t)st->st_atim.tv_nsec;
  o->mtime.sec = (int64_t)st->st_mtim.tv_sec;
  o->mtime.nsec = (int32_t)st->st_mtim.tv_nsec;
  o->ctime.sec = (int64_t)st->st_ctim.tv_sec;
  o->ctime.nsec = (int32_t)st->st_ctim.tv_nsec;
}

int mp_os_fstat(mp_handle_t h, struct mp_stat *st) {
  struct stat s;
  if (fstat(h, &s) < 0) return err_of(errno);
  mp__stat_from_stat(st, &s);
  return 0;
}

int64_t mp_os_seek(mp_handle_t h, int64_t off, int whence) {
  int w = whence == MP_SEEK_SET ? SEEK_SET
        : whence == MP_SEEK_CUR ? SEEK_CUR : SEEK_END;
  off_t r = lseek(h, (off_t)off, w);
  return r < 0 ? err_of(errno) : (int64_t)r;
}

int64_t mp_os_pwrite(mp_handle_t h, const void *buf, size_t len,
                     int64_t off) {
  ssize_t r;
  do r = off < 0 ? write(h, buf, len) : pwrite(h, buf, len, (off_t)off);
  while (r < 0 && errno == EINTR);
  return r < 0 ? err_of(errno) : (int64_t)r;
}

int mp_os_isatty(mp_handle_t h) { return isatty(h) ? 1 : 0; }

mp_handle_t mp_os_stdhandle(int which) { return which; }
