/* test-win-readfile.c: MP_OP_READFILE on Windows (issue 16; a pool job):
 * sizes around a doubling, the failures, a pipe handed back unread. */
#ifdef _WIN32
#include <windows.h>

#include "task.h"

#include "mp_os.h"

static int ndone;

static void count_cb(struct mp_op *op) {
  (void)op;
  ndone++;
}

/* Reads path; the completed op is the caller's to release. */
static struct mp_op *readfile(struct mp_loop *loop, const char *path) {
  struct mp_op *op = mp_op_new(loop, count_cb, NULL);
  int before = ndone;
  ASSERT_EQ(mp_op_prep_readfile(op, path), 0);
  ASSERT_EQ(mp_op_submit(op), 0);
  while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
  return op;
}

static void write_file(const char *path, const char *data, size_t n) {
  struct mp_loop *loop = test_loop();
  struct mp_op *op = mp_op_new(loop, count_cb, NULL);
  int before = ndone;
  ASSERT_EQ(mp_op_prep_writefile(op, path, data, n), 0);
  ASSERT_EQ(mp_op_submit(op), 0);
  while (ndone == before) mp_loop_run(loop, MP_RUN_ONCE);
  ASSERT_EQ(op->result, 0);
  mp_op_release(op);
  CLOSE_LOOP(loop);
}

TEST_IMPL(win_readfile) {
  static const size_t sizes[] = {0, 1, 4096, 65536, 65537, 1048577};
  char dir[MAX_PATH * 3], p[MAX_PATH * 4];
  wchar_t wdir[MAX_PATH], tmp[MAX_PATH];
  GetTempPathW(MAX_PATH, tmp);
  swprintf(wdir, MAX_PATH, L"%lsmp-rf-%lu", tmp,
           (unsigned long)GetCurrentProcessId());
  ASSERT(CreateDirectoryW(wdir, NULL));
  WideCharToMultiByte(CP_UTF8, 0, wdir, -1, dir, sizeof dir, NULL, NULL);
  snprintf(p, sizeof p, "%s/f", dir);
  char *data = malloc(1048577);
  ASSERT(data != NULL);
  for (size_t i = 0; i < 1048577; i++) data[i] = (char)('a' + i % 23);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    write_file(p, data, sizes[i]);
    struct mp_loop *loop = test_loop();
    struct mp_op *op = readfile(loop, p);
    ASSERT_EQ(op->result, (long long)sizes[i]);
    ASSERT_EQ(memcmp(mp_op_readfile_data(op), data, sizes[i]), 0);
    mp_op_release(op);
    CLOSE_LOOP(loop);
  }
  free(data);
  struct mp_loop *loop = test_loop();
  struct mp_op *op = readfile(loop, dir);
  ASSERT_EQ(op->result, MP_EISDIR);
  mp_op_release(op);
  snprintf(p, sizeof p, "%s/missing", dir);
  op = readfile(loop, p);
  ASSERT_EQ(op->result, MP_ENOENT);
  ASSERT(mp_op_readfile_data(op) == NULL);
  mp_op_release(op);
  /* a pipe: handed back open, unread */
  HANDLE srv = CreateNamedPipeW(L"\\\\.\\pipe\\mp-rf-test",
                                PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                                PIPE_TYPE_BYTE, 1, 4096, 4096, 0, NULL);
  ASSERT(srv != INVALID_HANDLE_VALUE);
  op = readfile(loop, "\\\\.\\pipe\\mp-rf-test");
  ASSERT_EQ(op->result, MP_EAGAIN);
  ASSERT(op->handle != MP_INVALID_HANDLE);
  ASSERT_EQ(mp_os_close(op->handle), 0);
  mp_op_release(op);
  CloseHandle(srv);
  snprintf(p, sizeof p, "%s/f", dir);
  DeleteFileA(p);
  ASSERT(RemoveDirectoryW(wdir));
  CLOSE_LOOP(loop);
  return 0;
}
#endif
