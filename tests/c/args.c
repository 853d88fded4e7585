/* args.c: the moonport command's option parsing (cmd/margs.c), as
 * lua.c's collectargs plus --backend. Prints "N passed, N failed". */
#include <stdio.h>
#include <string.h>

#include "margs.h"

static int passed, failed;

/* Parses the words of cmd (split on spaces; "_" stands for an empty
 * word) and checks flags, first and backend. */
static void check(const char *cmd, int flags, int first, const char *backend) {
  char buf[256], *argv[32];
  int argc = 0;
  snprintf(buf, sizeof buf, "moonport %s", cmd);
  for (char *w = strtok(buf, " "); w && argc < 31; w = strtok(NULL, " "))
    argv[argc++] = strcmp(w, "_") == 0 ? w + 1 : w;
  argv[argc] = NULL;
  struct mp_args a;
  int r = mp_args_parse(argc, argv, &a);
  int ok = r == flags && a.flags == flags && a.first == first &&
           (backend ? a.backend && strcmp(a.backend, backend) == 0
                    : a.backend == NULL);
  if (ok) {
    passed++;
    printf("ok - %s\n", cmd);
  } else {
    failed++;
    printf("not ok - %s: flags %d first %d backend %s\n", cmd, a.flags,
           a.first, a.backend ? a.backend : "(none)");
  }
}

/* --workers [N]: the count parsed and where the script is. */
static void check_workers(const char *cmd, int flags, int first,
                          int workers) {
  char buf[256], *argv[32];
  int argc = 0;
  snprintf(buf, sizeof buf, "moonport %s", cmd);
  for (char *w = strtok(buf, " "); w && argc < 31; w = strtok(NULL, " "))
    argv[argc++] = w;
  argv[argc] = NULL;
  struct mp_args a;
  int r = mp_args_parse(argc, argv, &a);
  if (r == flags && a.first == first &&
      (flags == MP_ARGS_ERROR || a.workers == workers)) {
    passed++;
    printf("ok - %s\n", cmd);
  } else {
    failed++;
    printf("not ok - %s: flags %d first %d workers %d\n", cmd, r, a.first,
           a.workers);
  }
}

static void check_msg(const char *opt, const char *want) {
  char msg[128];
  mp_args_error(opt, msg, sizeof msg);
  if (strcmp(msg, want) == 0) {
    passed++;
    printf("ok - message for %s\n", opt);
  } else {
    failed++;
    printf("not ok - message for %s: %s\n", opt, msg);
  }
}

int main(void) {
  enum { ERR = MP_ARGS_ERROR, I = MP_ARGS_I, V = MP_ARGS_V, E = MP_ARGS_E,
         NOENV = MP_ARGS_NOENV };
  check("", 0, 1, NULL);
  check("x.lua", 0, 1, NULL);
  check("x.lua -e y", 0, 1, NULL); /* options end at the script */
  check("-e x=1", E, 3, NULL);
  check("-ex=1", E, 2, NULL);
  check("-e _", E, 3, NULL); /* an empty statement is an argument */
  check("-l string", 0, 3, NULL);
  check("-lstring -l g=mod s.lua a", 0, 4, NULL);
  check("-i", I | V, 2, NULL);
  check("-v -E -W", V | NOENV, 4, NULL);
  check("-", 0, 1, NULL);
  check("-- -x", 0, 2, NULL);
  check("--", 0, 2, NULL);
  check("--backend epoll x.lua", 0, 3, "epoll");
  check("--backend=epoll -e 1", E, 4, "epoll");
  /* errors: first is the option at fault */
  check("-x", ERR, 1, NULL);
  check("-e", ERR, 1, NULL);
  check("-v -e -x", ERR, 2, NULL);
  check("-l", ERR, 1, NULL);
  check("-vx", ERR, 1, NULL);
  check("-Ex", ERR, 1, NULL);
  check("-Wx", ERR, 1, NULL);
  check("-ix", ERR, 1, NULL);
  check("--x", ERR, 1, NULL);
  check("---", ERR, 1, NULL);
  check("--backend", ERR, 1, NULL);
  check("--backend -e 1", ERR, 1, NULL);
  check("--backend=", ERR, 1, NULL);
  check("--backend _", ERR, 1, NULL);
  check("--backendx epoll", ERR, 1, NULL);
  check_workers("x.lua", 0, 1, 0);
  check_workers("--workers 4 x.lua", 0, 3, 4);
  check_workers("--workers=4 x.lua", 0, 2, 4);
  check_workers("--workers x.lua", 0, 2, MP_WORKERS_CPUS);
  check_workers("--workers -e 1 x.lua", MP_ARGS_E, 4, MP_WORKERS_CPUS);
  check_workers("--workers 1024 x.lua", 0, 3, 1024);
  check_workers("--workers 1025 x.lua", ERR, 1, 0);
  check_workers("--workers 0 x.lua", ERR, 1, 0);
  check_workers("--workers 2 --backend epoll x.lua", 0, 5, 2);
  check_workers("--workers", 0, 2, MP_WORKERS_CPUS);
  check_workers("--workers=0 x.lua", ERR, 1, 0);
  check_workers("--workers=-1 x.lua", ERR, 1, 0);
  check_workers("--workers= x.lua", ERR, 1, 0);
  check_workers("--workers=2x x.lua", ERR, 1, 0);
  check_workers("--workersx x.lua", ERR, 1, 0);
  check_msg("--workers=0", "'--workers=0': a count from 1 to 1024 expected");
  check_msg("--workers", "'--workers': a count from 1 to 1024 expected");
  check_msg("-e", "'-e' needs argument");
  check_msg("-l", "'-l' needs argument");
  check_msg("--backend", "'--backend' needs argument");
  check_msg("-x", "unrecognized option '-x'");
  check_msg("--foo", "unrecognized option '--foo'");
  check_msg("--backendx", "unrecognized option '--backendx'");
  check_msg("--backend=", "'--backend=' needs argument");
  /* argv[0] only, and a NULL before argc (fuzzers build odd vectors) */
  char prog[] = "moonport", *none[] = {prog, NULL};
  struct mp_args a;
  if (mp_args_parse(1, none, &a) == 0 && a.first == 1) passed++;
  else failed++, printf("not ok - argv[0] only\n");
  if (mp_args_parse(3, none, &a) == 0 && a.first == 1) passed++;
  else failed++, printf("not ok - NULL before argc\n");
  if (mp_args_parse(0, none + 1, &a) == 0 && a.first == 0) passed++;
  else failed++, printf("not ok - argc 0: first %d\n", a.first);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
